// TunIO module. See docs/architecture.md.
