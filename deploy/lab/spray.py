#!/usr/bin/env python3
"""Garbage to a router's waypoint address and ports, for the end-to-end tests.

  spray.py IFACE DST_MAC SRC_IP DST_IP COUNT [SEED]

Sends COUNT Ethernet frames out of IFACE (a packet socket: the bytes go out exactly as
built, lying lengths included) from SRC_IP to DST_IP, TCP and UDP, destination ports across
the default waypoint range 16384-65535 and 1280. The mix, in turn:
  - random bytes after a valid IP header (UDP and TCP, correct checksums, so the host stack
    would answer them: ICMP port unreachable, RST);
  - SVR-like packets: the metadata cookie and a header, then random TLVs, with bits flipped
    (checksums correct);
  - TCP segments with random flags (SYN, ACK, FIN, RST, none) and random payload;
  - truncated packets (IP total length larger than what is sent);
  - lying lengths (UDP length or TCP data offset wrong, IP total length shorter than sent).
Paced at about 20,000 packets a second. Prints "spray: N sent" at the end.
"""
import random
import socket
import struct
import sys
import time

COOKIE = bytes([0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip_header(src, dst, proto, total, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def l4(src, dst, proto, segment):
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    c = csum(pseudo + segment)
    off = 6 if proto == 17 else 16
    if proto == 17 and c == 0:
        c = 0xFFFF
    return segment[:off] + struct.pack("!H", c) + segment[off + 2:]


def udp(sp, dp, payload, length=None):
    return struct.pack("!HHHH", sp, dp, length if length is not None else 8 + len(payload), 0) + payload


def tcp(sp, dp, flags, payload, doff=5):
    return struct.pack("!HHIIBBHHH", sp, dp, random.getrandbits(32), random.getrandbits(32),
                       doff << 4, flags, 65535, 0, 0) + payload


def svr_like(rng):
    tlvs = rng.randbytes(rng.randrange(0, 80))
    block = COOKIE + bytes([0x10, 12 + len(tlvs) // 2]) + struct.pack("!H", len(tlvs)) + tlvs
    block = bytearray(block + rng.randbytes(rng.randrange(0, 200)))
    for _ in range(rng.randrange(1, 8)):
        i = rng.randrange(len(block))
        block[i] ^= 1 << rng.randrange(8)
    return bytes(block)


def port(rng):
    return 1280 if rng.random() < 0.02 else rng.randrange(16384, 65536)


def build(rng, src, dst, n):
    kind = n % 6
    proto = 6 if (n // 6) % 2 else 17
    ident = n & 0xFFFF
    sp, dp = rng.randrange(1024, 65536), port(rng)
    payload = rng.randbytes(rng.randrange(0, 120))
    if kind == 1:
        payload = svr_like(rng)
    if kind == 2:
        proto = 6
    if kind in (0, 1, 2):
        if proto == 17:
            seg = l4(src, dst, 17, udp(sp, dp, payload))
        else:
            flags = rng.choice([0x02, 0x10, 0x18, 0x01, 0x04, 0x00, 0x12, 0x29]) if kind == 2 else 0x18
            seg = l4(src, dst, 6, tcp(sp, dp, flags, payload))
        return ip_header(src, dst, proto, 20 + len(seg), ident) + seg
    if kind == 3:  # truncated: the IP header claims more than is sent
        seg = udp(sp, dp, payload) if proto == 17 else tcp(sp, dp, 0x02, payload)
        seg = seg[:rng.randrange(4, len(seg) + 1)]
        return ip_header(src, dst, proto, 20 + len(seg) + rng.randrange(1, 400), ident) + seg
    if kind == 4:  # lying L4 lengths, checksums correct
        if proto == 17:
            seg = l4(src, dst, 17, udp(sp, dp, payload, length=rng.randrange(0, 65536)))
        else:
            seg = l4(src, dst, 6, tcp(sp, dp, 0x02, payload, doff=rng.choice([0, 1, 4, 15])))
        return ip_header(src, dst, proto, 20 + len(seg), ident) + seg
    # kind 5: IP total length shorter than the frame, or random bytes after the ports
    seg = struct.pack("!HH", sp, dp) + rng.randbytes(rng.randrange(4, 100))
    total = 20 + len(seg) - rng.randrange(0, 4)
    return ip_header(src, dst, proto, max(total, 24), ident) + seg


def main():
    if len(sys.argv) < 6:
        sys.stderr.write(__doc__)
        return 2
    iface, mac, src_s, dst_s, count = sys.argv[1:6]
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    src, dst = socket.inet_aton(src_s), socket.inet_aton(dst_s)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    own = s.getsockname()[4]
    eth = bytes.fromhex(mac.replace(":", "")) + own + b"\x08\x00"
    sent = 0
    start = time.monotonic()
    for n in range(int(count)):
        frame = eth + build(rng, src, dst, n)
        try:
            s.send(frame)
            sent += 1
        except OSError:
            time.sleep(0.001)
        if n % 500 == 499:
            ahead = start + (n + 1) / 20000.0 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    print("spray: %d sent in %.1f s" % (sent, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
