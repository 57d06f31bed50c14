// WanFilter: the classic BPF program a WanReceiver attaches to its AF_PACKET socket, so the
// kernel hands over only the packets svrd owns and drops everything else before it is
// copied to user space.
//
// The program runs on the network-layer packet (an AF_PACKET SOCK_DGRAM socket filters with
// the link header already pulled, so offset 0 is the first byte of the IPv4 header). Loads
// beyond the end of the packet make the kernel return 0 (drop), so runts never pass.
//
// IPv4 program, with W = waypoint address, port ranges R1..Rn, both protocols:
//
//   0  ld   #pkttype            A = skb->pkt_type (ancillary load SKF_AD_PKTTYPE)
//   1  jeq  #PACKET_HOST  2, D  only frames addressed to this host's MAC (not promiscuous
//                               captures, not broadcast/multicast) — what ip_rcv accepts
//   2  ldb  [0]                 A = version/IHL byte
//   3  jge  #0x45       4, D    version 4 and IHL >= 5 ...
//   4  jgt  #0x4f       D, 5    ... and version 4 (0x45...0x4f)
//   5  ld   [16]                A = destination address
//   6  jeq  #W          7, D    addressed to the waypoint
//   7  ldb  [9]                 A = protocol
//   8  jeq  #17         L, 9    UDP
//   9  jeq  #6          L, D    TCP          (one jeq per allowed protocol)
//      (with .icmpFragmentationNeeded, the last jeq goes on to:)
//      jeq  #1          +1, D   ICMP
//      ldh  [6]                 not a fragment of one
//      jset #0x3fff     D, +1
//      ldxb 4*([0]&0xf)
//      ldh  [x+0]               type and code
//      jeq  #0x0304     Y, D    "fragmentation needed"
//   L  ldh  [6]                 A = flags and fragment offset
//      jset #0x1fff     D, +1   a non-first fragment has no L4 header: drop
//      ldxb 4*([0]&0xf)         X = IHL * 4 (the L4 header's offset)
//      ldh  [x+2]               A = destination port (same offset for UDP and TCP)
//   per range lo...hi:
//      jge  #lo      +1, next   (a single port is one `jeq #lo  Y, next`)
//      jgt  #hi    next, Y
//   D  ret  #0                  drop
//   Y  ret  #0xffffffff         accept the whole packet
//
// First fragments (MF set, offset 0) carry the ports and pass; non-first fragments do not.
// Jump offsets are 8 bits, so the number of ranges is limited (`maxPortRanges`).

internal import CShim

/// The IP protocols a WAN filter accepts.
public struct WanProtocols: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let udp = WanProtocols(rawValue: 1)
    public static let tcp = WanProtocols(rawValue: 2)
    /// ICMP "fragmentation needed" (type 3 code 4) to the waypoint, IPv4 only: the underlay
    /// reporting that a packet svrd sent was too big for a link (path MTU).
    public static let icmpFragmentationNeeded = WanProtocols(rawValue: 4)
}

/// A classic BPF program selecting the packets of one waypoint, and the ethertype of the
/// packet socket it is meant for.
public struct WanFilter: Sendable, Equatable {
    /// One classic BPF instruction (the layout of `struct sock_filter`).
    public struct Instruction: Sendable, Equatable, CustomStringConvertible {
        public var code: UInt16
        public var jt: UInt8
        public var jf: UInt8
        public var k: UInt32
        public init(code: UInt16, jt: UInt8 = 0, jf: UInt8 = 0, k: UInt32 = 0) {
            self.code = code
            self.jt = jt
            self.jf = jf
            self.k = k
        }
        /// `{ 0xCODE, jt, jf, 0xK }`, the notation of `tcpdump -dd`.
        public var description: String {
            "{ 0x\(String(code, radix: 16)), \(jt), \(jf), 0x\(String(k, radix: 16)) }"
        }
    }

    /// Most port ranges one filter may list (keeps every jump within 8 bits).
    public static let maxPortRanges = 64
    /// The default waypoint ports: the waypoint range of spec §3 (16384...65535, which also
    /// covers the odd top port a peer might use) and 1280 (BFD, firewall detector).
    public static let defaultPorts: [ClosedRange<UInt16>] = [16384...65535, 1280...1280]

    /// The ethertype of the packet socket the program is for (0x0800 for IPv4).
    public let etherType: UInt16
    /// The program.
    public let instructions: [Instruction]

    /// A filter accepting IPv4 packets to `address` (host byte order, e.g. 0x0a000001 for
    /// 10.0.0.1) with one of `protocols` and a destination port in one of `ports`, that are
    /// not non-first fragments and arrive addressed to this host (PACKET_HOST). See the top
    /// of this file for the program.
    public static func ipv4(
        destination address: UInt32, protocols: WanProtocols = [.udp, .tcp],
        ports: [ClosedRange<UInt16>] = defaultPorts
    ) throws(WanIOError) -> WanFilter {
        let numbers = try check(protocols.subtracting(.icmpFragmentationNeeded), ports)
        var p = ProgramBuilder()
        p.emitHostAndVersionCheck(firstByte: 0x45...0x4f)
        p.emit(ld(.word, abs: 16))
        p.jump(jeq, address, true: .next, false: .drop)
        p.emitProtocols(numbers, at: 9, icmpFragmentationNeeded: protocols.contains(.icmpFragmentationNeeded))
        p.emit(ld(.half, abs: 6))
        p.jump(jset, 0x1fff, true: .drop, false: .next)
        p.emit(Instruction(code: UInt16(SVR_BPF_LDX | SVR_BPF_B | SVR_BPF_MSH), k: 0))
        p.emit(Instruction(code: UInt16(SVR_BPF_LD | SVR_BPF_H | SVR_BPF_IND), k: 2))
        p.emitPorts(ports)
        return WanFilter(etherType: UInt16(SVR_ETH_P_IP), instructions: try p.finish())
    }

    /// A filter accepting IPv6 packets to `address` (16 bytes, network order) whose next
    /// header is directly one of `protocols` (no extension headers: a fragment or routing
    /// header is rejected) and whose destination port is in one of `ports`, addressed to this
    /// host. The program: `ld #pkttype; jeq #PACKET_HOST`; `ldb [0]`, version 6
    /// (0x60...0x6f); four `ld [24+4i]; jeq #word` for the address; `ldb [6]`, one `jeq` per
    /// protocol; `ldh [42]` (the destination port behind the 40-byte header); the port ranges
    /// as for IPv4.
    public static func ipv6(
        destination address: [UInt8], protocols: WanProtocols = [.udp, .tcp],
        ports: [ClosedRange<UInt16>] = defaultPorts
    ) throws(WanIOError) -> WanFilter {
        guard address.count == 16 else {
            throw WanIOError(.invalidConfiguration, operation: "build filter", interface: "", detail: "an IPv6 address has 16 bytes, got \(address.count)")
        }
        let numbers = try check(protocols, ports)
        var p = ProgramBuilder()
        p.emitHostAndVersionCheck(firstByte: 0x60...0x6f)
        for i in 0..<4 {
            let word = address[4 * i..<4 * i + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            p.emit(ld(.word, abs: UInt32(24 + 4 * i)))
            p.jump(jeq, word, true: .next, false: .drop)
        }
        p.emitProtocols(numbers, at: 6)
        p.emit(ld(.half, abs: 42))
        p.emitPorts(ports)
        return WanFilter(etherType: UInt16(SVR_ETH_P_IPV6), instructions: try p.finish())
    }

    /// Checks the parameters shared by both families; returns the protocol numbers.
    private static func check(_ protocols: WanProtocols, _ ports: [ClosedRange<UInt16>]) throws(WanIOError) -> [UInt32] {
        func bad(_ detail: String) -> WanIOError {
            WanIOError(.invalidConfiguration, operation: "build filter", interface: "", detail: detail)
        }
        guard !protocols.isEmpty, protocols.isSubset(of: [.udp, .tcp]) else { throw bad("protocols must be UDP and/or TCP") }
        guard !ports.isEmpty else { throw bad("no destination ports") }
        guard ports.count <= maxPortRanges else { throw bad("\(ports.count) port ranges, at most \(maxPortRanges)") }
        return (protocols.contains(.udp) ? [17] : []) + (protocols.contains(.tcp) ? [6] : [])
    }

    /// The IP version the filter is for (from its ethertype).
    public var isIPv6: Bool { etherType == UInt16(SVR_ETH_P_IPV6) }

    // ---- instruction helpers ----------------------------------------------------------

    private enum Size { case word, half, byte }
    private static func ld(_ size: Size, abs k: UInt32) -> Instruction {
        let s = switch size {
        case .word: SVR_BPF_W
        case .half: SVR_BPF_H
        case .byte: SVR_BPF_B
        }
        return Instruction(code: UInt16(SVR_BPF_LD | s | SVR_BPF_ABS), k: k)
    }
    private static let jeq = UInt16(SVR_BPF_JMP | SVR_BPF_JEQ | SVR_BPF_K)
    private static let jgt = UInt16(SVR_BPF_JMP | SVR_BPF_JGT | SVR_BPF_K)
    private static let jge = UInt16(SVR_BPF_JMP | SVR_BPF_JGE | SVR_BPF_K)
    private static let jset = UInt16(SVR_BPF_JMP | SVR_BPF_JSET | SVR_BPF_K)
    static let ret = UInt16(SVR_BPF_RET | SVR_BPF_K)

    /// Emits instructions with symbolic jump targets and resolves them in `finish()`.
    private struct ProgramBuilder {
        enum Target: Equatable {
            /// The instruction right after the jump.
            case next
            /// `n` instructions further than `.next`.
            case skip(Int)
            /// The start of the port checks.
            case ports
            case drop
            case accept
        }
        private var code: [Instruction] = []
        private var targets: [(index: Int, jt: Target, jf: Target)] = []
        private var portsIndex = -1

        mutating func emit(_ i: Instruction) { code.append(i) }
        mutating func jump(_ op: UInt16, _ k: UInt32, true jt: Target, false jf: Target) {
            targets.append((code.count, jt, jf))
            code.append(Instruction(code: op, k: k))
        }
        /// `ld #pkttype; jeq #PACKET_HOST`, then `ldb [0]` within `firstByte` (version and
        /// header length), else drop.
        mutating func emitHostAndVersionCheck(firstByte: ClosedRange<UInt32>) {
            emit(WanFilter.ld(.word, abs: UInt32(bitPattern: Int32(SVR_SKF_AD_OFF) + Int32(SVR_SKF_AD_PKTTYPE))))
            jump(WanFilter.jeq, UInt32(SVR_PACKET_HOST), true: .next, false: .drop)
            emit(WanFilter.ld(.byte, abs: 0))
            jump(WanFilter.jge, firstByte.lowerBound, true: .next, false: .drop)
            jump(WanFilter.jgt, firstByte.upperBound, true: .drop, false: .next)
        }

        /// `ldb [offset]` and one `jeq` per protocol number to the port checks (else drop);
        /// the port checks start right after.
        mutating func emitProtocols(_ numbers: [UInt32], at offset: UInt32, icmpFragmentationNeeded: Bool = false) {
            emit(WanFilter.ld(.byte, abs: offset))
            for (i, proto) in numbers.enumerated() {
                jump(WanFilter.jeq, proto, true: .ports, false: i == numbers.count - 1 && !icmpFragmentationNeeded ? .drop : .next)
            }
            if icmpFragmentationNeeded {
                jump(WanFilter.jeq, 1, true: .next, false: .drop)
                emit(WanFilter.ld(.half, abs: 6))
                jump(WanFilter.jset, 0x3fff, true: .drop, false: .next)
                emit(Instruction(code: UInt16(SVR_BPF_LDX | SVR_BPF_B | SVR_BPF_MSH), k: 0))
                emit(Instruction(code: UInt16(SVR_BPF_LD | SVR_BPF_H | SVR_BPF_IND), k: 0))
                jump(WanFilter.jeq, 0x0304, true: .accept, false: .drop)
            }
            portsIndex = code.count
        }

        /// With the destination port in A: accept if it is in one of `ports`, else drop.
        mutating func emitPorts(_ ports: [ClosedRange<UInt16>]) {
            for (i, r) in ports.enumerated() {
                let next: Target = i == ports.count - 1 ? .drop : .next
                if r.lowerBound == r.upperBound {
                    jump(WanFilter.jeq, UInt32(r.lowerBound), true: .accept, false: next)
                } else {
                    // jge lo: true -> the jgt right behind; false -> the next range (one further).
                    jump(WanFilter.jge, UInt32(r.lowerBound), true: .next, false: next == .drop ? .drop : .skip(1))
                    jump(WanFilter.jgt, UInt32(r.upperBound), true: next, false: .accept)
                }
            }
        }

        consuming func finish() throws(WanIOError) -> [Instruction] {
            let drop = code.count
            let accept = drop + 1
            code.append(Instruction(code: WanFilter.ret, k: 0))
            code.append(Instruction(code: WanFilter.ret, k: 0xffff_ffff))
            for t in targets {
                func offset(_ target: Target) throws(WanIOError) -> UInt8 {
                    let to = switch target {
                    case .next: t.index + 1
                    case .skip(let n): t.index + 1 + n
                    case .ports: portsIndex
                    case .drop: drop
                    case .accept: accept
                    }
                    let d = to - t.index - 1
                    guard (0...255).contains(d) else {
                        throw WanIOError(.invalidConfiguration, operation: "build filter", interface: "", detail: "jump of \(d) instructions")
                    }
                    return UInt8(d)
                }
                code[t.index].jt = try offset(t.jt)
                code[t.index].jf = try offset(t.jf)
            }
            return code
        }
    }
}
