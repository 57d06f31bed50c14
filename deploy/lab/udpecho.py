#!/usr/bin/env python3
"""Tiny UDP echo for the svrd lab and the end-to-end tests.

  udpecho.py server ADDRESS PORT            echo every datagram back to its sender (forever)
  udpecho.py client ADDRESS PORT COUNT [PAYLOAD [SOURCE]]
      send COUNT datagrams (PAYLOAD plus a sequence number) from SOURCE (default: any),
      wait for each echo (1 s, 3 tries), print "udp: N/COUNT echoed" and exit 0 only if
      every datagram came back unchanged.
"""
import socket
import sys


def server(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def client(addr, port, count, payload, source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if source:
        s.bind((source, 0))
    s.settimeout(1.0)
    ok = 0
    for i in range(count):
        msg = ("%s #%d" % (payload, i)).encode()
        for _ in range(3):
            s.sendto(msg, (addr, port))
            try:
                while True:
                    data, _peer = s.recvfrom(65535)
                    if data == msg:
                        ok += 1
                        break
                break
            except socket.timeout:
                continue
    print("udp: %d/%d echoed" % (ok, count))
    return 0 if ok == count else 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "server":
        server(argv[2], int(argv[3]))
        return 0
    if len(argv) >= 5 and argv[1] == "client":
        payload = argv[5] if len(argv) > 5 else "svrd-lab-udp"
        source = argv[6] if len(argv) > 6 else None
        return client(argv[2], int(argv[3]), int(argv[4]), payload, source)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
