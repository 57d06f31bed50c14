// wan_extra: C helpers for TunIO's WAN I/O (WanReceiver, WanSender) that Swift cannot write
// directly.
//
// - AF_PACKET, SOL_PACKET options, struct sockaddr_ll and struct sock_filter live in
//   <linux/if_packet.h> / <linux/filter.h>, which Swift's Glibc module does not export; the
//   classic-BPF opcode macros (BPF_LD | BPF_W | BPF_ABS, ...) are function-like or composed
//   macros. They are re-exported here as enum constants, pinned with _Static_assert in
//   wan_extra.c.
// - The PACKET_AUXDATA control message is found with CMSG_FIRSTHDR/CMSG_NXTHDR, which are
//   macros.
// - Socket setup is a sequence of calls where the order matters (the filter must be attached
//   before the socket is bound to a protocol, or unfiltered packets would be queued first);
//   doing it in one C function keeps that order in one place.
//
// Same conventions as CShim.h: every function returns >= 0 on success or -errno.
#ifndef SVR_WAN_EXTRA_H
#define SVR_WAN_EXTRA_H

#include <stdint.h>
#include <sys/socket.h>

/// Layout-identical copy of struct sock_filter (one classic BPF instruction).
typedef struct svr_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} svr_bpf_insn;

enum {
    // classic BPF opcode parts (linux/bpf_common.h)
    SVR_BPF_LD = 0x00, SVR_BPF_LDX = 0x01, SVR_BPF_ALU = 0x04, SVR_BPF_JMP = 0x05, SVR_BPF_RET = 0x06,
    SVR_BPF_W = 0x00, SVR_BPF_H = 0x08, SVR_BPF_B = 0x10,
    SVR_BPF_ABS = 0x20, SVR_BPF_IND = 0x40, SVR_BPF_MSH = 0xa0,
    SVR_BPF_JEQ = 0x10, SVR_BPF_JGT = 0x20, SVR_BPF_JGE = 0x30, SVR_BPF_JSET = 0x40,
    SVR_BPF_K = 0x00,
    SVR_BPF_MAXINSNS = 4096,
    // ancillary load offsets (linux/filter.h): SKF_AD_OFF is negative, so it is an int here
    SVR_SKF_AD_OFF = -0x1000,
    SVR_SKF_AD_PKTTYPE = 4,
    // packet types (linux/if_packet.h)
    SVR_PACKET_HOST = 0,
    // ethertypes (linux/if_ether.h)
    SVR_ETH_P_IP = 0x0800,
    SVR_ETH_P_IPV6 = 0x86DD,
    // tpacket_auxdata.tp_status bits
    SVR_TP_STATUS_CSUMNOTREADY = 0x8,
    SVR_TP_STATUS_CSUM_VALID = 0x80,
    /// Bytes of control buffer per message that hold one PACKET_AUXDATA cmsg.
    SVR_WAN_AUXDATA_SPACE = 64,
};

/// Which step of a setup function failed (written to `*step` when it returns -errno).
enum {
    SVR_WAN_STEP_SOCKET = 1,
    SVR_WAN_STEP_FILTER = 2,
    SVR_WAN_STEP_BUFFER = 3,
    SVR_WAN_STEP_AUXDATA = 4,
    SVR_WAN_STEP_BIND = 5,
    SVR_WAN_STEP_BINDTODEVICE = 6,
};

/// Opens a non-blocking AF_PACKET/SOCK_DGRAM socket that receives the network-layer packets
/// (link header stripped) of `ethertype` arriving on interface `ifindex`:
/// socket with protocol 0 (receives nothing yet), SO_ATTACH_FILTER with `filter` (`count`
/// instructions), SO_RCVBUFFORCE `rcvbuf` (SO_RCVBUF if not permitted; skipped if 0),
/// PACKET_AUXDATA on, then bind to (ifindex, ethertype) — so no packet is queued that the
/// filter did not accept. Returns the fd or -errno, with the failed step in `*step`.
int svr_wan_packet_open(int ifindex, uint16_t ethertype, const svr_bpf_insn *filter,
                        unsigned int count, int rcvbuf, int *step);

/// Attaches a classic BPF program to any socket (SO_ATTACH_FILTER). Returns 0 or -errno.
int svr_wan_attach_filter(int fd, const svr_bpf_insn *filter, unsigned int count);

/// Opens a non-blocking SOCK_RAW/IPPROTO_RAW socket of `ipv6` ? AF_INET6 : AF_INET (header
/// included is implied: IP_HDRINCL, and IPV6_HDRINCL since Linux 4.5 — the caller writes whole
/// packets), bound to the interface `ifname` with SO_BINDTODEVICE unless `ifname` is NULL or
/// empty, with SO_SNDBUFFORCE `sndbuf` (SO_SNDBUF if not permitted; skipped if 0). Returns
/// the fd or -errno, with the failed step in `*step`.
int svr_wan_raw_open(int ipv6, const char *ifname, int sndbuf, int *step);

/// The tp_status of the PACKET_AUXDATA control message of a received `msg`, or -1 if it
/// has none (also when the control buffer was truncated).
int svr_wan_auxdata_status(const struct msghdr *msg);

/// getsockopt(SOL_SOCKET, SO_RCVBUF or SO_SNDBUF) — what the kernel actually granted
/// (twice the requested value, for its bookkeeping). Returns the bytes or -errno.
int svr_wan_socket_buffer(int fd, int send);

/// PACKET_STATISTICS of an AF_PACKET socket: packets the kernel dropped because the receive
/// buffer was full, since the previous call (reading resets the kernel's counters).
/// Returns the count or -errno.
int svr_wan_packet_drops(int fd);

#endif
