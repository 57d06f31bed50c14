#!/usr/bin/env python3
"""Helpers for the svrd end-to-end security tests (replay, reflection, server-first data).

  sectest.py count ADDRESS PORT LOG       UDP echo that appends one line per datagram to LOG
  sectest.py banner ADDRESS PORT MARKER   TCP server: writes MARKER as soon as a client
                                          connects, then echoes one line and closes
  sectest.py connect ADDRESS PORT         TCP client: prints what the server wrote first,
                                          sends a line, prints the echo
  sectest.py rawsend FILE                 sends every line of FILE (hex of an IPv4 packet,
                                          header included) through a raw socket
  sectest.py replay IFACE A B COUNT FILE  records COUNT UDP packets between waypoints A and
                                          B on IFACE (not path monitoring, port 1280), then
                                          at once re-sends those from A to B unchanged
                                          (replay) and those from B to A back to B with
                                          addresses and ports swapped (reflection); writes
                                          "forward N" and "reflected M" to FILE
  sectest.py sessions PORT                reads `svrd show sessions --json` on stdin and
                                          prints "FORWARD REVERSE" encryption of each
                                          session to destination port PORT
"""
import json
import socket
import sys


def count(addr, port, log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    with open(log, "a", buffering=1) as f:
        while True:
            data, peer = s.recvfrom(65535)
            f.write("%s %d\n" % (peer[0], len(data)))
            s.sendto(data, peer)


def banner(addr, port, marker):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(8)
    while True:
        c, _ = s.accept()
        try:
            c.sendall((marker + "\r\n").encode())
            c.settimeout(3)
            line = c.recv(4096)
            if line:
                c.sendall(b"echo " + line)
        except OSError:
            pass
        finally:
            c.close()


def connect(addr, port):
    c = socket.create_connection((addr, port), 3)
    c.settimeout(3)
    first = c.recv(4096)
    print(first.decode(errors="replace").strip())
    c.sendall(b"client line\r\n")
    print(c.recv(4096).decode(errors="replace").strip())
    c.close()
    return 0


def rawsend(path):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    n = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            p = bytes.fromhex(line)
            dst = socket.inet_ntoa(p[16:20])
            s.sendto(p, (dst, 0))
            n += 1
    print("sent %d" % n)
    return 0


def replay(iface, a, b, count, out):
    import struct
    import time
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    r.bind((iface, 0))
    r.settimeout(1.0)
    a, b = socket.inet_aton(a), socket.inet_aton(b)
    seen = []
    deadline = time.time() + 20
    while len(seen) < count and time.time() < deadline:
        try:
            frame = r.recv(65535)
        except socket.timeout:
            continue
        if len(frame) < 14 + 28 or frame[12:14] != b"\x08\x00":
            continue
        p = frame[14:]
        total = struct.unpack("!H", p[2:4])[0]
        p = p[:total]
        ihl = (p[0] & 15) * 4
        if p[9] != 17 or {p[12:16], p[16:20]} != {a, b}:
            continue
        sport, dport = struct.unpack("!HH", p[ihl:ihl + 4])
        if 1280 in (sport, dport):
            continue
        seen.append(p)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    forward = reflected = 0
    for p in seen:
        ihl = (p[0] & 15) * 4
        if p[12:16] == a:
            forward += 1
        else:
            # Addresses and ports swapped: the checksums stay valid.
            p = p[:12] + p[16:20] + p[12:16] + p[20:ihl] + p[ihl + 2:ihl + 4] + p[ihl:ihl + 2] + p[ihl + 4:]
            reflected += 1
        s.sendto(p, (socket.inet_ntoa(p[16:20]), 0))
    with open(out, "w") as f:
        f.write("forward %d\nreflected %d\n" % (forward, reflected))
    return 0


def sessions(port):
    for s in json.load(sys.stdin)["sessions"]:
        if s["original"]["destination-port"] == port:
            print(s["forward"]["encryption"], s["reverse"]["encryption"])
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "count":
        count(argv[2], int(argv[3]), argv[4])
    elif len(argv) == 5 and argv[1] == "banner":
        banner(argv[2], int(argv[3]), argv[4])
    elif len(argv) == 4 and argv[1] == "connect":
        return connect(argv[2], int(argv[3]))
    elif len(argv) == 7 and argv[1] == "replay":
        return replay(argv[2], argv[3], argv[4], int(argv[5]), argv[6])
    elif len(argv) == 3 and argv[1] == "sessions":
        return sessions(int(argv[2]))
    elif len(argv) == 3 and argv[1] == "rawsend":
        return rawsend(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
