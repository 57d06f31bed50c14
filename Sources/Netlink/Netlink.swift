// Netlink module. See docs/architecture.md.
