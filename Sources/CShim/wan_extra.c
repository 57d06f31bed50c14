// See include/wan_extra.h. Compiled with _GNU_SOURCE (CShim target setting).
#include "wan_extra.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

_Static_assert(sizeof(svr_bpf_insn) == sizeof(struct sock_filter), "sock_filter size");
_Static_assert(offsetof(svr_bpf_insn, k) == offsetof(struct sock_filter, k), "sock_filter layout");
_Static_assert(SVR_BPF_LD == BPF_LD && SVR_BPF_LDX == BPF_LDX && SVR_BPF_ALU == BPF_ALU, "BPF classes");
_Static_assert(SVR_BPF_JMP == BPF_JMP && SVR_BPF_RET == BPF_RET, "BPF classes");
_Static_assert(SVR_BPF_W == BPF_W && SVR_BPF_H == BPF_H && SVR_BPF_B == BPF_B, "BPF sizes");
_Static_assert(SVR_BPF_ABS == BPF_ABS && SVR_BPF_IND == BPF_IND && SVR_BPF_MSH == BPF_MSH, "BPF modes");
_Static_assert(SVR_BPF_JEQ == BPF_JEQ && SVR_BPF_JGT == BPF_JGT && SVR_BPF_JGE == BPF_JGE, "BPF jumps");
_Static_assert(SVR_BPF_JSET == BPF_JSET && SVR_BPF_K == BPF_K, "BPF ops");
_Static_assert(SVR_BPF_MAXINSNS == BPF_MAXINSNS, "BPF_MAXINSNS");
_Static_assert(SVR_SKF_AD_OFF == SKF_AD_OFF && SVR_SKF_AD_PKTTYPE == SKF_AD_PKTTYPE, "SKF_AD");
_Static_assert(SVR_PACKET_HOST == PACKET_HOST, "PACKET_HOST");
_Static_assert(SVR_ETH_P_IP == ETH_P_IP && SVR_ETH_P_IPV6 == ETH_P_IPV6, "ETH_P");
_Static_assert(SVR_TP_STATUS_CSUMNOTREADY == TP_STATUS_CSUMNOTREADY, "TP_STATUS_CSUMNOTREADY");
_Static_assert(SVR_TP_STATUS_CSUM_VALID == TP_STATUS_CSUM_VALID, "TP_STATUS_CSUM_VALID");
_Static_assert(SVR_WAN_AUXDATA_SPACE >= CMSG_SPACE(sizeof(struct tpacket_auxdata)), "auxdata space");

int svr_wan_attach_filter(int fd, const svr_bpf_insn *filter, unsigned int count) {
    if (count == 0 || count > BPF_MAXINSNS) return -EINVAL;
    struct sock_fprog prog = { .len = (unsigned short)count, .filter = (struct sock_filter *)filter };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0 ? -errno : 0;
}

// SO_*BUFFORCE (CAP_NET_ADMIN, ignores the rmem_max/wmem_max caps), else the capped option.
static int set_buffer(int fd, int force_name, int name, int bytes) {
    if (bytes <= 0) return 0;
    if (setsockopt(fd, SOL_SOCKET, force_name, &bytes, sizeof(bytes)) == 0) return 0;
    if (errno != EPERM) return -errno;
    return setsockopt(fd, SOL_SOCKET, name, &bytes, sizeof(bytes)) < 0 ? -errno : 0;
}

static int fail(int fd, int *step, int which, int rc) {
    if (step) *step = which;
    if (fd >= 0) close(fd);
    return rc;
}

int svr_wan_packet_open(int ifindex, uint16_t ethertype, const svr_bpf_insn *filter,
                        unsigned int count, int rcvbuf, int *step) {
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(-1, step, SVR_WAN_STEP_SOCKET, -errno);
    int rc = svr_wan_attach_filter(fd, filter, count);
    if (rc < 0) return fail(fd, step, SVR_WAN_STEP_FILTER, rc);
    rc = set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf);
    if (rc < 0) return fail(fd, step, SVR_WAN_STEP_BUFFER, rc);
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0)
        return fail(fd, step, SVR_WAN_STEP_AUXDATA, -errno);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ethertype);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return fail(fd, step, SVR_WAN_STEP_BIND, -errno);
    return fd;
}

int svr_wan_raw_open(int ipv6, const char *ifname, int sndbuf, int *step) {
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) return fail(-1, step, SVR_WAN_STEP_SOCKET, -errno);
    if (ifname && ifname[0]) {
        size_t len = strlen(ifname);
        if (len >= IFNAMSIZ) return fail(fd, step, SVR_WAN_STEP_BINDTODEVICE, -EINVAL);
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)len) < 0)
            return fail(fd, step, SVR_WAN_STEP_BINDTODEVICE, -errno);
    }
    int rc = set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf);
    if (rc < 0) return fail(fd, step, SVR_WAN_STEP_BUFFER, rc);
    /* svrd keeps the path MTU of its peers itself (from the underlay's ICMP): the kernel's
       cached path MTU must not drop its DF packets, only the device MTU limits a send.
       Best effort: without it the kernel's cache applies too. */
    int probe = ipv6 ? IPV6_PMTUDISC_PROBE : IP_PMTUDISC_PROBE;
    (void)setsockopt(fd, ipv6 ? IPPROTO_IPV6 : IPPROTO_IP, ipv6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER, &probe, sizeof(probe));
    return fd;
}

int svr_wan_auxdata_status(const struct msghdr *msg) {
    if (msg->msg_flags & MSG_CTRUNC) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof(aux));
            return (int)(aux.tp_status & 0x7fffffff);
        }
    }
    return -1;
}

int svr_wan_socket_buffer(int fd, int send) {
    int value = 0;
    socklen_t len = sizeof(value);
    if (getsockopt(fd, SOL_SOCKET, send ? SO_SNDBUF : SO_RCVBUF, &value, &len) < 0) return -errno;
    return value;
}

int svr_wan_packet_drops(int fd) {
    struct tpacket_stats st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return -errno;
    return (int)(st.tp_drops & 0x7fffffff);
}
