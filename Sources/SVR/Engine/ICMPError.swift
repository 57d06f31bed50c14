// ICMPv4 error messages (RFC 792, RFC 1191, RFC 1812 §4.3.2.3): building one that quotes an
// offending packet, and reading the quote of one that was received.
//
// Building writes, into a buffer the caller owns, a complete IPv4 packet
//   [IPv4 header 20][ICMP header 8: type, code, checksum, rest][quote]
// where the quote is the offending packet's IP header (with its options) and the first
// `quoteData` bytes after it (8 by default, RFC 792), cut so the whole error stays within 576
// bytes (RFC 1812 §4.3.2.3). Both checksums are computed. Nothing is allocated.
//
// `mayAnswer` holds the RFC 1122 §3.2.2 / RFC 1812 §4.3.2.7 rules about when no error may be
// sent at all (an error about an ICMP error, about a non-first fragment, to a broadcast or
// multicast or unspecified source, …); a caller that generates errors checks it first.

/// ICMPv4 error types and codes the engine sends or relays.
public enum ICMPv4 {
    public static let echoReply: UInt8 = 0
    public static let destinationUnreachable: UInt8 = 3
    public static let sourceQuench: UInt8 = 4
    public static let redirect: UInt8 = 5
    public static let echoRequest: UInt8 = 8
    public static let timeExceeded: UInt8 = 11
    public static let parameterProblem: UInt8 = 12

    // Destination unreachable codes (type 3).
    public static let netUnreachable: UInt8 = 0
    public static let hostUnreachable: UInt8 = 1
    public static let protocolUnreachable: UInt8 = 2
    public static let portUnreachable: UInt8 = 3
    /// "Fragmentation needed and DF set": carries the next-hop MTU (RFC 1191).
    public static let fragmentationNeeded: UInt8 = 4
    public static let communicationAdministrativelyProhibited: UInt8 = 13

    // Time exceeded codes (type 11).
    public static let ttlExceededInTransit: UInt8 = 0
    public static let fragmentReassemblyTimeExceeded: UInt8 = 1

    /// Whether `type` is an ICMP error message (one that quotes an offending packet) rather
    /// than a query (echo, timestamp, …). Errors are never sent about errors.
    @inline(__always)
    public static func isError(type: UInt8) -> Bool {
        type == destinationUnreachable || type == sourceQuench || type == redirect || type == timeExceeded
            || type == parameterProblem
    }
}

/// Builds ICMPv4 error messages in caller-owned memory (see the file header).
public enum ICMPErrorBuilder {
    /// The largest error packet written (RFC 1812 §4.3.2.3: the quote is as large as fits in
    /// 576 bytes).
    public static let maxLength = 576
    /// The smallest buffer any error needs: IPv4 20 + ICMP 8 + a 20-byte quoted header + 8.
    public static let minLength = 56

    /// Whether an ICMP error may be sent about `offending` (an IPv4 packet starting at its
    /// first byte): it parses as IPv4 with a whole header, is not a non-first fragment, is not
    /// itself an ICMP error (queries such as echo are fine), and its source is a unicast
    /// address (not 0.0.0.0, 127/8, 224/4 multicast, 240/4 or the limited broadcast) and its
    /// destination is not multicast or broadcast.
    public static func mayAnswer(_ offending: UnsafeRawBufferPointer) -> Bool {
        guard let p = offending.baseAddress, offending.count >= 20, ld8(p, 0) >> 4 == 4 else { return false }
        let ihl = Int(ld8(p, 0) & 15) * 4
        guard ihl >= 20, ihl <= offending.count else { return false }
        if ld16(p, 6) & 0x1FFF != 0 { return false }  // a non-first fragment
        let src = ld32(p, 12), dst = ld32(p, 16)
        let srcTop = src >> 24, dstTop = dst >> 24
        if src == 0 || srcTop == 127 || srcTop >= 224 { return false }
        if dstTop >= 224 { return false }  // multicast, class E, 255.255.255.255
        if ld8(p, 9) == IPProtocolNumber.icmp {
            // An ICMP message: answer queries only (an error about an error is never sent).
            guard offending.count > ihl else { return false }
            if ICMPv4.isError(type: ld8(p, ihl)) { return false }
        }
        return true
    }

    /// Writes an ICMPv4 error into `out` and returns its length, or nil when `offending` is not
    /// an IPv4 packet with a whole header or `out` is shorter than `minLength`.
    ///
    /// - Parameters:
    ///   - out: where the packet goes (starting at its first byte). May overlap `offending`:
    ///     the quote is moved into place before the headers are written.
    ///   - type, code: e.g. `ICMPv4.destinationUnreachable`, `ICMPv4.portUnreachable`.
    ///   - nextHopMTU: for type 3 code 4 (RFC 1191), stored in the low 16 bits of the ICMP
    ///     header's second word; ignored for other types/codes (the word is zero).
    ///   - source: the error's IPv4 source (the node reporting the problem), host order.
    ///   - destination: whom the error goes to (usually the offending packet's source).
    ///   - offending: the packet the error is about, starting at its IP header; its IP header
    ///     and up to `quoteData` bytes after it are quoted (fewer if it is shorter or the error
    ///     would exceed 576 bytes or `out`).
    ///   - quoteData: bytes quoted after the offending IP header: 8 (RFC 792) by default, up
    ///     to `maxLength` (RFC 1812: "as much as possible without exceeding 576").
    ///   - ttl: the error's TTL.
    @discardableResult
    public static func write(into out: UnsafeMutableRawBufferPointer, type: UInt8, code: UInt8, nextHopMTU: UInt16 = 0,
                             source: UInt32, destination: UInt32, offending: UnsafeRawBufferPointer,
                             quoteData: Int = 8, ttl: UInt8 = 64) -> Int? {
        guard let o = out.baseAddress, out.count >= minLength,
              let q = offending.baseAddress, offending.count >= 20, ld8(q, 0) >> 4 == 4
        else { return nil }
        let ihl = Int(ld8(q, 0) & 15) * 4
        guard ihl >= 20, ihl <= offending.count else { return nil }
        // The offending packet's own idea of its length, if smaller than the bytes we were given.
        let claimed = Int(ld16(q, 2))
        let available = (claimed >= ihl ? min(claimed, offending.count) : offending.count) - ihl
        let room = min(out.count, maxLength) - 28 - ihl
        guard room >= 0 else { return nil }
        let quoteLength = ihl + max(0, min(quoteData, available, room))
        // The quote first (memmove semantics: `out` may overlap `offending`).
        (o + 28).copyMemory(from: q, byteCount: quoteLength)
        let total = 28 + quoteLength
        st8(o, 20, type)
        st8(o, 21, code)
        st16(o, 22, 0)
        st32(o, 24, type == ICMPv4.destinationUnreachable && code == ICMPv4.fragmentationNeeded ? UInt32(nextHopMTU) : 0)
        st16(o, 22, InternetChecksum.checksum(UnsafeRawBufferPointer(start: o + 20, count: total - 20)))
        EngineWire.writeIPv4(o, totalLength: total, proto: IPProtocolNumber.icmp, source: source, destination: destination,
                             carry: IPv4Carry(tos: 0xC0, identification: 0, dontFragment: false, ttl: ttl))
        return total
    }
}

/// What an ICMPv4 error (a packet starting at its IP header) says: its type and code, the
/// second word of its ICMP header (next-hop MTU, pointer, gateway), who sent it, and where its
/// quote of the offending packet lies with the offending 5-tuple as quoted.
public struct ICMPErrorQuote: Equatable, Sendable {
    public var type: UInt8
    public var code: UInt8
    /// The ICMP header's second word (next-hop MTU in the low 16 bits for type 3 code 4).
    public var rest: UInt32
    /// The error's IPv4 source (the node that reported it), host order.
    public var reporter: UInt32
    /// Offset of the quoted IP header from the error's first byte (IP header length + 8).
    public var quoteOffset: Int
    /// Bytes quoted (the quoted IP header and what follows it, up to the error's end).
    public var quoteLength: Int
    /// The quoted IP header's length.
    public var quotedHeaderLength: Int
    /// The quoted packet's protocol, source, destination (host order) and ports (0 when the
    /// quote has no transport header; for ICMP echo, source port = identifier, destination 0).
    public var proto: UInt8
    public var source: UInt32, destination: UInt32
    public var sourcePort: UInt16, destinationPort: UInt16

    /// Why a received ICMP message cannot be relayed.
    public enum Problem: Error, Equatable, Sendable {
        /// Not an IPv4 ICMP error (a query, or another protocol).
        case notAnError
        /// The packet or its quote is cut short (no whole quoted IP header and 8 bytes).
        case truncated
        /// The quote is of an ICMP error (an error about an error) or of a non-first fragment.
        case unquotable
    }

    /// Reads an IPv4 packet as an ICMP error. Checks lengths only (no checksums: the caller
    /// relays, it does not trust what it reads beyond finding the session).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(Problem) -> ICMPErrorQuote {
        guard let p = bytes.baseAddress, bytes.count >= 20, ld8(p, 0) >> 4 == 4 else { throw .notAnError }
        let ihl = Int(ld8(p, 0) & 15) * 4
        guard ihl >= 20, ld8(p, 9) == IPProtocolNumber.icmp else { throw .notAnError }
        let total = min(Int(ld16(p, 2)), bytes.count)
        guard total >= ihl + 8 else { throw .truncated }
        let type = ld8(p, ihl)
        guard ICMPv4.isError(type: type) else { throw .notAnError }
        let qo = ihl + 8
        guard total >= qo + 20, ld8(p, qo) >> 4 == 4 else { throw .truncated }
        let qihl = Int(ld8(p, qo) & 15) * 4
        guard qihl >= 20, total >= qo + qihl + 8 else { throw .truncated }
        if ld16(p, qo + 6) & 0x1FFF != 0 { throw .unquotable }
        let qproto = ld8(p, qo + 9)
        let l4 = qo + qihl
        var sp: UInt16 = 0, dp: UInt16 = 0
        switch qproto {
        case IPProtocolNumber.tcp, IPProtocolNumber.udp:
            sp = ld16(p, l4); dp = ld16(p, l4 + 2)
        case IPProtocolNumber.icmp:
            let t = ld8(p, l4)
            if ICMPv4.isError(type: t) { throw .unquotable }
            if t == ICMPv4.echoRequest || t == ICMPv4.echoReply { sp = ld16(p, l4 + 4) }
        default:
            break
        }
        return ICMPErrorQuote(type: type, code: ld8(p, ihl + 1), rest: ld32(p, ihl + 4), reporter: ld32(p, 12),
                              quoteOffset: qo, quoteLength: total - qo, quotedHeaderLength: qihl, proto: qproto,
                              source: ld32(p, qo + 12), destination: ld32(p, qo + 16), sourcePort: sp, destinationPort: dp)
    }
}
