// tun_extra: small C helpers for TunIO and its benchmark that CShim.h does not have.
//
// - eventfd(2) lives in <sys/eventfd.h>, which Swift's Glibc module does not export;
//   TunWakeup uses it to wake a data-plane thread blocked in poll(2).
// - SIOCSIFFLAGS / SIOCSIFADDR / SIOCSIFNETMASK need struct ifreq and sockaddr_in inside a
//   union, awkward from Swift; the TUN benchmark uses them to bring its device up without
//   netlink (which is another module) and without running `ip`.
//
// Same conventions as CShim.h: every function returns >= 0 on success or -errno.
#ifndef SVR_TUN_EXTRA_H
#define SVR_TUN_EXTRA_H

#include <stdint.h>

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). Returns the fd or -errno.
int svr_eventfd_open(void);
/// Adds 1 to the eventfd counter. EAGAIN (counter saturated) counts as success. Returns 0 or -errno.
int svr_eventfd_signal(int fd);
/// Reads (and so clears) the eventfd counter. Returns 1 if it was set, 0 if not, or -errno.
int svr_eventfd_drain(int fd);

/// Sets (up != 0) or clears IFF_UP on the interface `name` in the calling thread's network
/// namespace (SIOCGIFFLAGS + SIOCSIFFLAGS). Returns 0 or -errno.
int svr_if_set_up(const char *name, int up);
/// Gives the interface `name` the IPv4 address `addr_be` (network byte order) with
/// `prefix_len` (0...32), in the calling thread's namespace (SIOCSIFADDR + SIOCSIFNETMASK,
/// which also installs the prefix route once the link is up). Returns 0 or -errno.
int svr_if_set_ipv4(const char *name, uint32_t addr_be, int prefix_len);

#endif
