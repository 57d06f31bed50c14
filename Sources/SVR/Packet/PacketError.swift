// Errors of the packet layer: buffer geometry, header parsing and in-place edits. Every case
// names what is wrong and carries the numbers that made it wrong, so a drop counter or a
// debug line can say exactly why a packet was refused.

/// Why a packet could not be parsed or edited.
public enum PacketError: Error, Equatable, Sendable, CustomStringConvertible {
    // ---- buffer geometry ---------------------------------------------------------------
    /// The slot description is inconsistent (negative values, or offset + count > capacity).
    case invalidSlot(capacity: Int, offset: Int, count: Int)
    /// An access or edit of `length` bytes at `offset` does not fit in a packet of
    /// `packetLength` bytes.
    case outOfBounds(offset: Int, length: Int, packetLength: Int)
    /// Growing at the front needs `needed` bytes of headroom; only `available` are free.
    case noHeadroom(needed: Int, available: Int)
    /// Growing at the end needs `needed` bytes of tailroom; only `available` are free.
    case noTailroom(needed: Int, available: Int)
    /// Opening a gap of `needed` bytes fits neither in the headroom nor in the tailroom.
    case noRoom(needed: Int, headroom: Int, tailroom: Int)

    // ---- IP --------------------------------------------------------------------------
    /// The packet has no bytes.
    case emptyPacket
    /// The IP version nibble is neither 4 nor 6 (or not the one the caller asked for).
    case badVersion(UInt8)
    /// The IPv4/IPv6 base header needs `needed` bytes; the packet has `available`.
    case truncatedIPHeader(needed: Int, available: Int)
    /// IPv4 IHL below 5 (a header shorter than 20 bytes).
    case ipv4HeaderLengthTooShort(ihl: UInt8)
    /// IPv4 total length is below the header length or beyond the bytes received.
    case ipv4TotalLengthInvalid(totalLength: Int, headerLength: Int, available: Int)
    /// IPv6 payload length points beyond the bytes received.
    case ipv6PayloadLengthExceedsBuffer(payloadLength: Int, available: Int)
    /// IPv6 jumbogram (payload length 0 with a hop-by-hop header): not supported.
    case ipv6Jumbogram
    /// An IPv6 extension header (`nextHeader` names it) runs past the end of the packet.
    case truncatedExtensionHeader(nextHeader: UInt8, offset: Int)
    /// An IPv6 extension header we cannot skip (mobility, HIP, shim6, experimental).
    case unsupportedExtensionHeader(UInt8)

    // ---- transport ---------------------------------------------------------------------
    /// The L4 header of protocol `proto` needs `needed` bytes; `available` remain.
    case truncatedTransportHeader(proto: UInt8, needed: Int, available: Int)
    /// TCP data offset below 5 words.
    case tcpDataOffsetTooShort(dataOffset: UInt8)
    /// TCP header (data offset × 4 = `headerLength`) runs beyond the `available` bytes.
    case tcpHeaderBeyondPacket(headerLength: Int, available: Int)
    /// UDP length field is below 8 or disagrees with the `available` IP payload bytes.
    case udpLengthInvalid(udpLength: Int, available: Int)

    // ---- edits -------------------------------------------------------------------------
    /// The edit needs a whole datagram; this is an IP fragment.
    case fragmented
    /// The edit needs an L4 header; protocol `proto` has none here (or it is a later fragment).
    case noTransportHeader(proto: UInt8)
    /// The new addresses are not of the packet's IP family.
    case addressFamilyMismatch
    /// The rewrite would change the L4 protocol (`packet` → `requested`); that is not a NAT.
    case protocolMismatch(packet: UInt8, requested: UInt8)
    /// The edited packet would be `length` bytes, more than an IP length field can say.
    case packetTooLarge(length: Int)
    /// Removing `requested` bytes, but only `available` bytes are there to remove.
    case lengthOutOfRange(requested: Int, available: Int)

    public var description: String {
        switch self {
        case .invalidSlot(let c, let o, let n): "invalid slot: capacity \(c), offset \(o), count \(n)"
        case .outOfBounds(let o, let l, let p): "\(l) bytes at offset \(o) are outside the \(p)-byte packet"
        case .noHeadroom(let n, let a): "no headroom: need \(n) bytes, \(a) free"
        case .noTailroom(let n, let a): "no tailroom: need \(n) bytes, \(a) free"
        case .noRoom(let n, let h, let t): "no room for \(n) bytes (headroom \(h), tailroom \(t))"
        case .emptyPacket: "empty packet"
        case .badVersion(let v): "bad IP version \(v)"
        case .truncatedIPHeader(let n, let a): "truncated IP header: need \(n) bytes, have \(a)"
        case .ipv4HeaderLengthTooShort(let ihl): "IPv4 IHL \(ihl) < 5"
        case .ipv4TotalLengthInvalid(let t, let h, let a):
            "IPv4 total length \(t) invalid (header \(h) bytes, \(a) bytes received)"
        case .ipv6PayloadLengthExceedsBuffer(let p, let a): "IPv6 payload length \(p) > \(a) bytes received"
        case .ipv6Jumbogram: "IPv6 jumbogram not supported"
        case .truncatedExtensionHeader(let nh, let o): "IPv6 extension header \(nh) at offset \(o) is truncated"
        case .unsupportedExtensionHeader(let nh): "unsupported IPv6 extension header \(nh)"
        case .truncatedTransportHeader(let p, let n, let a):
            "truncated protocol \(p) header: need \(n) bytes, have \(a)"
        case .tcpDataOffsetTooShort(let d): "TCP data offset \(d) < 5"
        case .tcpHeaderBeyondPacket(let h, let a): "TCP header of \(h) bytes exceeds the \(a) bytes left"
        case .udpLengthInvalid(let u, let a): "UDP length \(u) does not match the \(a) IP payload bytes"
        case .fragmented: "IP fragment: operation needs a whole datagram"
        case .noTransportHeader(let p): "protocol \(p) packet has no L4 header to edit"
        case .addressFamilyMismatch: "address family differs from the packet's"
        case .protocolMismatch(let p, let r): "packet protocol \(p), rewrite asked for \(r)"
        case .packetTooLarge(let l): "packet of \(l) bytes exceeds the IP length field"
        case .lengthOutOfRange(let r, let a): "cannot remove \(r) bytes, only \(a) present"
        }
    }
}
