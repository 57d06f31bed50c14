#!/usr/bin/env python3
"""Many UDP flows from one host, for the end-to-end tests.

  udpflows.py SOURCE ADDRESS PORT COUNT SECONDS [PASSES]

Opens COUNT UDP flows from SOURCE to ADDRESS:PORT: one datagram from each of COUNT
different source ports (a socket bound to the port, one datagram, closed), spread evenly
over about SECONDS. With PASSES > 1 every flow sends again in a later pass (a lost first
datagram is made up for). Ports in use on the host are skipped. Prints
"udpflows: N flows, M datagrams in S s".
"""
import socket
import sys
import time


def main():
    if len(sys.argv) < 6:
        sys.stderr.write(__doc__)
        return 2
    source, addr, port, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    passes = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    payload = b"svrd-e2e flow"
    ports = []
    start = time.monotonic()
    sent = 0
    per_pass = seconds / passes
    for p in range(passes):
        t0 = time.monotonic()
        candidates = ports if p > 0 else range(1024, 65536)
        for sport in candidates:
            if p == 0 and len(ports) >= count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((source, sport))
                s.sendto(payload, (addr, port))
                sent += 1
                if p == 0:
                    ports.append(sport)
            except OSError:
                pass
            finally:
                s.close()
            n = len(ports) if p == 0 else sent - count * p
            if n % 200 == 0:
                ahead = t0 + per_pass * n / count - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    print("udpflows: %d flows, %d datagrams in %.1f s" % (len(ports), sent, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
