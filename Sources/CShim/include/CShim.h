// CShim: the few things Swift cannot call directly on Linux.
//
// - ioctl request macros (_IOW etc.) for TUN devices,
// - _GNU_SOURCE-only calls (setns, unshare, recvmmsg/sendmmsg, pthread_setname_np),
// - struct mmsghdr, which Swift cannot see (re-declared layout-identically, checked with
//   _Static_assert in shim.c, as swift-nio's CNIOLinux does).
//
// Every function returns a non-negative value on success or -errno on failure, so the
// Swift side never has to read errno after a call that might have been reordered.
#ifndef SVR_CSHIM_H
#define SVR_CSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

// ---- TUN --------------------------------------------------------------------------------
enum {
    SVR_IFF_TUN = 0x0001,
    SVR_IFF_TAP = 0x0002,
    SVR_IFF_NO_PI = 0x1000,
    SVR_IFF_VNET_HDR = 0x4000,
    SVR_IFF_MULTI_QUEUE = 0x0100,
    SVR_IFNAMSIZ = 16,
    SVR_TUN_F_CSUM = 0x01,
    SVR_TUN_F_TSO4 = 0x02,
    SVR_TUN_F_TSO6 = 0x04,
    SVR_TUN_F_TSO_ECN = 0x08,
    SVR_TUN_F_UFO = 0x10,
    SVR_TUN_F_USO4 = 0x20,
    SVR_TUN_F_USO6 = 0x40,
    SVR_VNET_HDR_LEN = 10,
};

/// Opens /dev/net/tun and creates or attaches the device `name` (may be empty: the kernel
/// picks one) with IFF_* `flags`. Writes the kernel's name (NUL-terminated, at most 15
/// characters) to `out_name` (SVR_IFNAMSIZ bytes). Returns the fd or -errno.
/// The fd is opened O_CLOEXEC and O_NONBLOCK.
int svr_tun_open(const char *path, const char *name, int flags, char *out_name);
/// TUNSETOFFLOAD with TUN_F_* flags. Returns 0 or -errno.
int svr_tun_set_offload(int fd, unsigned int offload_flags);
/// TUNSETVNETHDRSZ. Returns 0 or -errno.
int svr_tun_set_vnet_hdr_size(int fd, int size);
/// TUNSETPERSIST. Returns 0 or -errno.
int svr_tun_set_persist(int fd, int persist);
/// TUNGETIFF: reads back the device's flags. Returns the flags (>= 0) or -errno.
int svr_tun_get_flags(int fd);
/// SIOCSIFMTU on the interface `name`. Returns 0 or -errno.
int svr_if_set_mtu(const char *name, int mtu);
/// SIOCGIFMTU. Returns the MTU or -errno.
int svr_if_get_mtu(const char *name);
/// if_nametoindex. Returns the index (> 0) or -errno.
int svr_if_index(const char *name);

// ---- namespaces and threads ---------------------------------------------------------------
/// setns(fd, CLONE_NEWNET) for the calling thread. Returns 0 or -errno.
int svr_setns_net(int fd);
/// unshare(CLONE_NEWNET) for the calling thread. Returns 0 or -errno.
int svr_unshare_net(void);
/// pthread_setname_np on the calling thread (name truncated to 15 bytes). Returns 0 or -errno.
int svr_set_thread_name(const char *name);
/// gettid(). Never fails.
int svr_gettid(void);

// ---- batched datagram I/O -------------------------------------------------------------------
/// Layout-identical copy of struct mmsghdr (checked in shim.c).
typedef struct svr_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} svr_mmsghdr;

/// recvmmsg with MSG_DONTWAIT unless `blocking`. Returns the number of messages or -errno.
int svr_recvmmsg(int fd, svr_mmsghdr *msgs, unsigned int count, int blocking);
/// sendmmsg. Returns the number of messages sent or -errno.
int svr_sendmmsg(int fd, svr_mmsghdr *msgs, unsigned int count, int blocking);

// CShim.h is the umbrella header, so the extra headers are included from here.
#include "tun_extra.h"
#include "wan_extra.h"
#include "svr_hmac.h"
#include "svrd_build.h"
#include "clock_extra.h"

// ---- CPU --------------------------------------------------------------------------------
/// Starts loading the cache line at `p` (for reading, keep in all cache levels). A hint: no
/// fault, no effect on results. Static inline, so Swift callers get the single instruction.
static inline void svr_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
