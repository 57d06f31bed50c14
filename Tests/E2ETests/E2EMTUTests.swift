// End-to-end: path MTU. The WAN router is split in two, joined by a link whose MTU the test
// changes (1500, 1420, 1280) while every router's own devices stay at 1500, so the routers
// learn the path MTU only from the underlay's ICMP "fragmentation needed". Nothing sets
// `mtu` in the configs.

import Glibc
import TestSupport
import Testing

@Suite(.serialized, .enabled(if: e2eEnabled, "root is needed (network namespaces)"))
struct E2EMTUTests {
    /// A TCP sink on port 9100 of the server: reads a connection to its end, answers the
    /// sha256 of what it read.
    static let sinkScript = """
        import hashlib, socket, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 9100)); s.listen(8)
        def serve(c):
            h = hashlib.sha256()
            while True:
                b = c.recv(65536)
                if not b: break
                h.update(b)
            c.sendall(h.hexdigest().encode()); c.close()
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """

    /// Uploads a file to the sink and prints the sha256 the server saw.
    static let uploadScript = """
        import socket, sys
        c = socket.create_connection((sys.argv[1], 9100), 10); c.settimeout(float(sys.argv[3]))
        with open(sys.argv[2], "rb") as f:
            while True:
                b = f.read(65536)
                if not b: break
                c.sendall(b)
        c.shutdown(socket.SHUT_WR)
        print(c.recv(100).decode())
        """

    /// UDP echo on port 9001 with DF off (IP_PMTUDISC_DONT) for its replies too.
    static let echoScript = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
        s.bind(("0.0.0.0", 9001))
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
        """

    /// UDP datagrams of the given sizes with DF off (IP_PMTUDISC_DONT): each must come back
    /// whole from the echo server (3 tries of 1 s). Prints "ok" or what failed.
    static let bigUDPScript = """
        import os, socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
        s.settimeout(1.0)
        bad = []
        for size in [int(x) for x in sys.argv[2].split(",")]:
            msg = os.urandom(size)
            for _ in range(3):
                s.sendto(msg, (sys.argv[1], 9001))
                try:
                    if s.recvfrom(65535)[0] == msg: break
                except socket.timeout:
                    pass
            else:
                bad.append(size)
        print("ok" if not bad else "lost %s" % bad)
        """

    /// Sends DF datagrams (IP_PMTUDISC_DO) of the socket's current path MTU until it stops
    /// shrinking, and prints that MTU (IP_MTU): what the ICMP "fragmentation needed" said.
    static let dfScript = """
        import socket, sys, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        s.connect((sys.argv[1], 9000))
        mtu, same = s.getsockopt(socket.IPPROTO_IP, 14), 0  # IP_MTU
        for _ in range(12):
            for _ in range(2):  # a send right after an ICMP error only reports it (EMSGSIZE)
                try:
                    s.send(b"d" * (mtu - 28))
                    break
                except OSError:
                    pass
            time.sleep(0.4)
            m = s.getsockopt(socket.IPPROTO_IP, 14)
            same = same + 1 if m == mtu else 0
            mtu = m
            if same >= 2: break
        print(mtu)
        """

    @Test("10 MB up and down through path MTUs 1500, 1420 and 1280 (learned from ICMP); big UDP; DF gets fragmentation-needed",
          arguments: [E2ELab.Transport.native, .udp])
    func pathMTU(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport, midLink: true)
        defer {
            let left = lab.close()
            #expect(left.isEmpty, "left behind after SIGTERM: \(left)")
        }
        try lab.start()
        try lab.startHTTPServer()
        try lab.startUDPEcho()
        let scripts = lab.work
        try writeFile("\(scripts)/sink.py", Self.sinkScript)
        try writeFile("\(scripts)/upload.py", Self.uploadScript)
        try writeFile("\(scripts)/bigudp.py", Self.bigUDPScript)
        try writeFile("\(scripts)/df.py", Self.dfScript)
        try writeFile("\(scripts)/echo.py", Self.echoScript)
        try lab.helper(lab.server, "\(python3) \(scripts)/sink.py", name: "sink")
        try lab.helper(lab.server, "\(python3) \(scripts)/echo.py", name: "echo-df-off")
        let want = try lab.makeBlob("blob10", megabytes: 10)
        try waitUntil(10, "TCP sink") {
            lab.server.sh("\(python3) -c \"import socket; socket.create_connection(('\(Addr.server)', 9100), 1)\"").status == 0
        }

        for mtu in [1500, 1420, 1280] {
            try lab.setPathMTU(mtu)
            if mtu == 1280 {
                // DF datagrams: the ingress answers "fragmentation needed" with the path MTU
                // less the encapsulation (AES-CBC+HMAC 48, HMAC trailer 16; UDP as UDP).
                let df = lab.client.sh("\(python3) \(scripts)/df.py \(Addr.server)")
                #expect(df.output.trimmed == "\(mtu - 64)", "DF UDP over a \(mtu) path (\(transport)): client's IP_MTU \(df.output)")
            }
            var t0 = now()
            let got = lab.download("blob10", timeout: 90)
            #expect(got == want, "10 MB download, path MTU \(mtu), \(transport): sha256 \(got ?? "none")")
            print("e2e mtu \(mtu) \(transport): 10 MB down in \(Double(Int((now() - t0) * 100)) / 100) s")
            t0 = now()
            let up = lab.client.sh("\(python3) \(scripts)/upload.py \(Addr.server) \(lab.work)/www/blob10 90")
            #expect(up.output.trimmed == want, "10 MB upload, path MTU \(mtu), \(transport): \(up.output)")
            print("e2e mtu \(mtu) \(transport): 10 MB up in \(Double(Int((now() - t0) * 100)) / 100) s")
        }
        // Datagrams that do not fit the 1280 path (DF off): SVR fragments, reassembled whole.
        let udp = lab.client.sh("\(python3) \(scripts)/bigudp.py \(Addr.server) 1400,4000,1400,4000")
        #expect(udp.output.trimmed == "ok", "big UDP datagrams over a 1280 path (\(transport)): \(udp.output)")

        for (i, name) in ["A", "B"].enumerated() {
            let stats = lab.show(i, "stats")
            print("router \(name) (\(transport)):\n\(stats.output)")
        }
    }
}
