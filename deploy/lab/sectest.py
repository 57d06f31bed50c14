#!/usr/bin/env python3
"""Helpers for the svrd end-to-end security tests (replay, reflection, server-first data).

  sectest.py count ADDRESS PORT LOG       UDP echo that appends one line per datagram to LOG
  sectest.py banner ADDRESS PORT MARKER   TCP server: writes MARKER as soon as a client
                                          connects, then echoes one line and closes
  sectest.py connect ADDRESS PORT         TCP client: prints what the server wrote first,
                                          sends a line, prints the echo
  sectest.py rawsend FILE                 sends every line of FILE (hex of an IPv4 packet,
                                          header included) through a raw socket
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
