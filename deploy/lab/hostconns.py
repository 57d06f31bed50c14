#!/usr/bin/env python3
"""The host's own connections, for the end-to-end tests.

  hostconns.py server ADDRESS PORT
      TCP and UDP echo on ADDRESS:PORT (forever).
  hostconns.py client ADDRESS PORT SOURCE COUNT
      COUNT TCP connections and COUNT UDP exchanges from SOURCE to ADDRESS:PORT, half of
      them from source ports forced into the waypoint range 16384-65535 (spread over it),
      half from ephemeral ports; each sends a line and expects it back. Prints
      "hostconns: N/M ok" and exits 0 only if every one came back.
"""
import selectors
import socket
import sys


def server(addr, port):
    sel = selectors.DefaultSelector()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(256)
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind((addr, port))
    sel.register(ls, selectors.EVENT_READ, "listen")
    sel.register(us, selectors.EVENT_READ, "udp")
    while True:
        for key, _ in sel.select():
            if key.data == "listen":
                c, _ = key.fileobj.accept()
                sel.register(c, selectors.EVENT_READ, "conn")
            elif key.data == "udp":
                data, peer = us.recvfrom(65535)
                us.sendto(data, peer)
            else:
                c = key.fileobj
                try:
                    data = c.recv(65535)
                except OSError:
                    data = b""
                if data:
                    c.sendall(data)
                else:
                    sel.unregister(c)
                    c.close()


def one(kind, addr, port, source, sport, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(2.0)
    try:
        s.bind((source, sport))
        if kind == "tcp":
            s.connect((addr, port))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(65535)
                if not chunk:
                    break
                got += chunk
            return got == msg
        for _ in range(3):
            s.sendto(msg, (addr, port))
            try:
                data, _ = s.recvfrom(65535)
                return data == msg
            except socket.timeout:
                continue
        return False
    except OSError as e:
        sys.stderr.write("hostconns: %s from %s:%d: %s\n" % (kind, source, sport, e))
        return False
    finally:
        s.close()


def client(addr, port, source, count):
    ok = total = 0
    for i in range(count):
        # forced ports spread over the waypoint range (a prime step), then ephemeral ones
        forced = 16384 + (i * 7919) % (65535 - 16384)
        for kind in ("tcp", "udp"):
            for sport in (forced, 0):
                total += 1
                if one(kind, addr, port, source, sport, ("%s %d %d\n" % (kind, i, sport)).encode()):
                    ok += 1
    print("hostconns: %d/%d ok" % (ok, total))
    return 0 if ok == total else 1


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
        return 0
    if len(sys.argv) == 6 and sys.argv[1] == "client":
        return client(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
