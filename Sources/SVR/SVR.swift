// SVR module. See docs/architecture.md.
