// A small pcap reader for the end-to-end tests: the classic libpcap file format (global
// header + records, either byte order, micro- or nanosecond timestamps) with Ethernet
// (802.1Q tags skipped), Linux cooked (SLL, SLL2) and raw-IP link types, and IPv4 / UDP / TCP
// decoding. Enough to judge what tcpdump saw on the WAN link; not a general dissector.

import Glibc

/// The SVR metadata cookie (spec §4.2), at the first byte after the L4 header.
let svrCookie: [UInt8] = [0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C]

struct PcapError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// One captured frame, decoded as far as IPv4 and UDP/TCP go.
struct CapturedPacket {
    /// Position in the capture (0-based).
    var index: Int
    /// The whole captured frame, link header included.
    var frame: [UInt8]
    /// Offset of the IPv4 header in `frame`, nil for anything that is not IPv4 (ARP, IPv6).
    var ipOffset: Int?
    var source: UInt32 = 0
    var destination: UInt32 = 0
    var ipProtocol: UInt8 = 0
    /// True for a non-first fragment (no L4 header in it).
    var isLaterFragment = false
    var sourcePort: UInt16 = 0
    var destinationPort: UInt16 = 0
    var tcpFlags: UInt8 = 0
    /// The L4 payload (after the UDP or TCP header), empty when there is none.
    var payload: ArraySlice<UInt8> = []

    var isIPv4: Bool { ipOffset != nil }
    var isUDP: Bool { ipProtocol == 17 && !isLaterFragment }
    var isTCP: Bool { ipProtocol == 6 && !isLaterFragment }

    /// The L4 payload starts with the SVR cookie.
    var hasMetadata: Bool {
        payload.count >= svrCookie.count && payload.prefix(svrCookie.count).elementsEqual(svrCookie)
    }

    /// svrd's path monitoring (BFD) and firewall detector: UDP port 1280 (docs/operations.md).
    var isPathMonitoring: Bool { isUDP && (sourcePort == 1280 || destinationPort == 1280) }

    /// The directional flow key "src:sport>dst:dport/proto".
    var flow: String {
        "\(dotted(source)):\(sourcePort)>\(dotted(destination)):\(destinationPort)/\(ipProtocol)"
    }

    /// True when `needle` occurs anywhere in the frame.
    func contains(_ needle: [UInt8]) -> Bool { frame.containsSequence(needle) }
}

enum Pcap {
    /// Reads and decodes a whole pcap file.
    static func read(path: String) throws(PcapError) -> [CapturedPacket] {
        try parse(try readFile(path))
    }

    static func parse(_ d: [UInt8]) throws(PcapError) -> [CapturedPacket] {
        guard d.count >= 24 else { throw PcapError("pcap: \(d.count) bytes, no global header") }
        let magicLE = d.le32(0)
        let little: Bool
        switch magicLE {
        case 0xA1B2_C3D4, 0xA1B2_3C4D: little = true
        case 0xD4C3_B2A1, 0x4D3C_B2A1: little = false
        default: throw PcapError("pcap: bad magic \(String(magicLE, radix: 16)) (pcapng is not supported; use tcpdump -w)")
        }
        let u32 = { (o: Int) -> UInt32 in little ? d.le32(o) : d.be32(o) }
        let linkType = u32(20) & 0x0FFF_FFFF
        var packets: [CapturedPacket] = []
        var off = 24
        while off + 16 <= d.count {
            let incl = Int(u32(off + 8))
            let start = off + 16
            guard incl >= 0, start + incl <= d.count else {
                // a record cut short by a killed tcpdump: ignore the tail
                break
            }
            let frame = Array(d[start..<start + incl])
            packets.append(decode(frame, index: packets.count, linkType: linkType))
            off = start + incl
        }
        return packets
    }

    /// Decodes one frame of the given link type.
    static func decode(_ frame: [UInt8], index: Int, linkType: UInt32) -> CapturedPacket {
        var p = CapturedPacket(index: index, frame: frame)
        var ip: Int?
        switch linkType {
        case 1:  // Ethernet
            var o = 12
            while o + 2 <= frame.count {
                let type = frame.be16(o)
                if type == 0x8100 || type == 0x88A8 { o += 4; continue }
                if type == 0x0800 { ip = o + 2 }
                break
            }
        case 113:  // Linux cooked (SLL)
            if frame.count >= 16, frame.be16(14) == 0x0800 { ip = 16 }
        case 276:  // Linux cooked v2 (SLL2)
            if frame.count >= 20, frame.be16(0) == 0x0800 { ip = 20 }
        case 101, 12, 14:  // raw IP
            if let first = frame.first, first >> 4 == 4 { ip = 0 }
        default:
            break
        }
        guard let ipo = ip, ipo + 20 <= frame.count, frame[ipo] >> 4 == 4 else { return p }
        let ihl = Int(frame[ipo] & 0x0F) * 4
        guard ihl >= 20, ipo + ihl <= frame.count else { return p }
        p.ipOffset = ipo
        p.ipProtocol = frame[ipo + 9]
        p.source = frame.be32(ipo + 12)
        p.destination = frame.be32(ipo + 16)
        let fragOffset = frame.be16(ipo + 6) & 0x1FFF
        p.isLaterFragment = fragOffset != 0
        let totalLength = Int(frame.be16(ipo + 2))
        let ipEnd = min(frame.count, ipo + max(totalLength, ihl))
        let l4 = ipo + ihl
        guard !p.isLaterFragment else { return p }
        switch p.ipProtocol {
        case 17 where l4 + 8 <= ipEnd:
            p.sourcePort = frame.be16(l4)
            p.destinationPort = frame.be16(l4 + 2)
            p.payload = frame[(l4 + 8)..<ipEnd]
        case 6 where l4 + 20 <= ipEnd:
            p.sourcePort = frame.be16(l4)
            p.destinationPort = frame.be16(l4 + 2)
            p.tcpFlags = frame[l4 + 13]
            let dataOffset = Int(frame[l4 + 12] >> 4) * 4
            if dataOffset >= 20, l4 + dataOffset <= ipEnd { p.payload = frame[(l4 + dataOffset)..<ipEnd] }
        default:
            break
        }
        return p
    }

    private static func readFile(_ path: String) throws(PcapError) -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw PcapError("cannot open \(path): errno \(errno)") }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}

/// The 4 network-order bytes of a dotted IPv4 address ("10.1.0.10").
func ipv4Bytes(_ s: String) -> [UInt8] {
    let parts = s.split(separator: ".").compactMap { UInt8($0) }
    precondition(parts.count == 4, "not an IPv4 address: \(s)")
    return parts
}

func ipv4(_ s: String) -> UInt32 {
    ipv4Bytes(s).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
}

func dotted(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

extension Array where Element == UInt8 {
    func be16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
    func be32(_ o: Int) -> UInt32 {
        UInt32(self[o]) << 24 | UInt32(self[o + 1]) << 16 | UInt32(self[o + 2]) << 8 | UInt32(self[o + 3])
    }
    func le32(_ o: Int) -> UInt32 {
        UInt32(self[o]) | UInt32(self[o + 1]) << 8 | UInt32(self[o + 2]) << 16 | UInt32(self[o + 3]) << 24
    }
}

extension Collection where Element == UInt8, Index == Int {
    /// True when `needle` occurs as a contiguous run.
    func containsSequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, count >= needle.count else { return needle.isEmpty }
        let first = needle[0]
        var i = startIndex
        let last = endIndex - needle.count
        while i <= last {
            if self[i] == first {
                var j = 1
                while j < needle.count && self[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}
