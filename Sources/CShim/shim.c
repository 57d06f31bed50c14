// See include/CShim.h. Compiled with _GNU_SOURCE.
#include "CShim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <net/if.h>
#include <linux/if_tun.h>

_Static_assert(SVR_IFF_TUN == IFF_TUN, "IFF_TUN");
_Static_assert(SVR_IFF_TAP == IFF_TAP, "IFF_TAP");
_Static_assert(SVR_IFF_NO_PI == IFF_NO_PI, "IFF_NO_PI");
_Static_assert(SVR_IFF_VNET_HDR == IFF_VNET_HDR, "IFF_VNET_HDR");
_Static_assert(SVR_IFF_MULTI_QUEUE == IFF_MULTI_QUEUE, "IFF_MULTI_QUEUE");
_Static_assert(SVR_IFNAMSIZ == IFNAMSIZ, "IFNAMSIZ");
_Static_assert(SVR_TUN_F_CSUM == TUN_F_CSUM, "TUN_F_CSUM");
_Static_assert(SVR_TUN_F_TSO4 == TUN_F_TSO4, "TUN_F_TSO4");
_Static_assert(SVR_TUN_F_TSO6 == TUN_F_TSO6, "TUN_F_TSO6");
_Static_assert(SVR_TUN_F_TSO_ECN == TUN_F_TSO_ECN, "TUN_F_TSO_ECN");
_Static_assert(SVR_TUN_F_UFO == TUN_F_UFO, "TUN_F_UFO");
_Static_assert(sizeof(svr_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr size");
_Static_assert(offsetof(svr_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int svr_tun_open(const char *path, const char *name, int flags, char *out_name) {
    int fd = open(path ? path : "/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (name) {
        if (strlen(name) >= IFNAMSIZ) { close(fd); return -EINVAL; }
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    }
    ifr.ifr_flags = (short)flags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (out_name) {
        memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
        out_name[IFNAMSIZ - 1] = 0;
    }
    return fd;
}

int svr_tun_set_offload(int fd, unsigned int offload_flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload_flags) < 0 ? -errno : 0;
}

int svr_tun_set_vnet_hdr_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int svr_tun_set_persist(int fd, int persist) {
    return ioctl(fd, TUNSETPERSIST, (unsigned long)persist) < 0 ? -errno : 0;
}

int svr_tun_get_flags(int fd) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) return -errno;
    return (unsigned short)ifr.ifr_flags;
}

static int ifreq_socket(const char *name, struct ifreq *ifr) {
    if (!name || strlen(name) >= IFNAMSIZ) return -EINVAL;
    memset(ifr, 0, sizeof(*ifr));
    strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return s < 0 ? -errno : s;
}

int svr_if_set_mtu(const char *name, int mtu) {
    struct ifreq ifr;
    int s = ifreq_socket(name, &ifr);
    if (s < 0) return s;
    ifr.ifr_mtu = mtu;
    int rc = ioctl(s, SIOCSIFMTU, &ifr) < 0 ? -errno : 0;
    close(s);
    return rc;
}

int svr_if_get_mtu(const char *name) {
    struct ifreq ifr;
    int s = ifreq_socket(name, &ifr);
    if (s < 0) return s;
    int rc = ioctl(s, SIOCGIFMTU, &ifr) < 0 ? -errno : ifr.ifr_mtu;
    close(s);
    return rc;
}

int svr_if_index(const char *name) {
    unsigned int idx = if_nametoindex(name);
    return idx == 0 ? -errno : (int)idx;
}

int svr_setns_net(int fd) { return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0; }
int svr_unshare_net(void) { return unshare(CLONE_NEWNET) < 0 ? -errno : 0; }

int svr_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[15] = 0;
    return -pthread_setname_np(pthread_self(), buf);
}

int svr_gettid(void) { return (int)syscall(SYS_gettid); }

int svr_recvmmsg(int fd, svr_mmsghdr *msgs, unsigned int count, int blocking) {
    int n;
    do {
        n = recvmmsg(fd, (struct mmsghdr *)msgs, count, blocking ? 0 : MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int svr_sendmmsg(int fd, svr_mmsghdr *msgs, unsigned int count, int blocking) {
    int n;
    do {
        n = sendmmsg(fd, (struct mmsghdr *)msgs, count, blocking ? 0 : MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
