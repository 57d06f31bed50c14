// See include/tun_extra.h. Compiled with _GNU_SOURCE (CShim target setting).
#include "tun_extra.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>

int svr_eventfd_open(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int svr_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    return 0;
}

int svr_eventfd_drain(int fd) {
    uint64_t value = 0;
    ssize_t n;
    do {
        n = read(fd, &value, sizeof(value));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    return value != 0;
}

// An AF_INET datagram socket and a zeroed ifreq naming `name`; the caller closes the socket.
static int ifreq_open(const char *name, struct ifreq *ifr) {
    if (!name || strlen(name) >= IFNAMSIZ) return -EINVAL;
    memset(ifr, 0, sizeof(*ifr));
    memcpy(ifr->ifr_name, name, strlen(name));
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return s < 0 ? -errno : s;
}

int svr_if_set_up(const char *name, int up) {
    struct ifreq ifr;
    int s = ifreq_open(name, &ifr);
    if (s < 0) return s;
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        rc = -errno;
    } else {
        if (up) ifr.ifr_flags |= IFF_UP; else ifr.ifr_flags &= ~IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}

int svr_if_set_ipv4(const char *name, uint32_t addr_be, int prefix_len) {
    if (prefix_len < 0 || prefix_len > 32) return -EINVAL;
    struct ifreq ifr;
    int s = ifreq_open(name, &ifr);
    if (s < 0) return s;
    int rc = 0;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = addr_be;
    memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
        rc = -errno;
    } else {
        sin.sin_addr.s_addr = prefix_len == 0 ? 0 : htonl(0xffffffffu << (32 - prefix_len));
        memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
        if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}
