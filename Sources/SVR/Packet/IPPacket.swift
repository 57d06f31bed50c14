// IPPacket: a parsed packet (buffer + layout) and the in-place edits of the SVR data plane:
//
//   rewrite(to:)               double NAT of addresses and ports, incremental checksums
//   insertAfterL4Header(...)   open a gap right after the L4 header for a metadata block
//   stripAfterL4Header(...)    remove that block again
//   appendTrailer / removeTrailer   the HMAC trailer at the end
//   recomputeChecksums()       after larger edits
//
// Length-changing edits fix the IPv4 total length and header checksum (or the IPv6 payload
// length), the UDP length, and recompute the L4 checksum over the new payload. They need a
// whole datagram with an L4 header (TCP, UDP, ICMP, ICMPv6). A UDP-over-IPv4 checksum of 0
// ("no checksum") stays 0 through NAT and length edits; `recomputeChecksums()` always computes.

/// A parsed IP packet that is edited in place. The layout is kept in step with the edits, so
/// a packet can be rewritten, given metadata and a trailer in any order without parsing again.
public struct IPPacket {
    /// The packet bytes; offset and count follow the edits. Hand this to the I/O layer.
    public private(set) var buffer: PacketBuffer
    /// The current layout (offsets, lengths, 5-tuple).
    public private(set) var layout: PacketLayout

    /// Parses `buffer` (see `PacketLayout.init(parsing:)` for what is validated).
    public init(_ buffer: PacketBuffer) throws(PacketError) {
        layout = try PacketLayout(parsing: buffer)
        self.buffer = buffer
    }

    /// The 5-tuple as the packet says now.
    @inlinable public var tuple: FiveTuple { layout.tuple }

    // ---- views -----------------------------------------------------------------------------

    public var ipv4: IPv4Header? { layout.family == .ipv4 ? IPv4Header(unchecked: buffer, at: 0) : nil }
    public var ipv6: IPv6Header? { layout.family == .ipv6 ? IPv6Header(unchecked: buffer, at: 0) : nil }
    public var tcp: TCPHeader? {
        layout.proto == IPProtocolNumber.tcp && layout.hasTransportHeader
            ? TCPHeader(unchecked: buffer, at: layout.l4Offset) : nil
    }
    public var udp: UDPHeader? {
        layout.proto == IPProtocolNumber.udp && layout.hasTransportHeader
            ? UDPHeader(unchecked: buffer, at: layout.l4Offset) : nil
    }
    /// The ICMP or ICMPv6 header.
    public var icmp: ICMPHeader? {
        (layout.proto == IPProtocolNumber.icmp || layout.proto == IPProtocolNumber.icmpv6) && layout.hasTransportHeader
            ? ICMPHeader(unchecked: buffer, at: layout.l4Offset, proto: layout.proto) : nil
    }

    /// Calls `body` with the L4 payload bytes (after the L4 header, up to the IP length).
    public func withPayload<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let start = layout.payloadOffset
        let end = layout.ipLength
        return try buffer.withUnsafeMutableBytes { (all) throws(E) -> R in
            try body(UnsafeMutableRawBufferPointer(rebasing: all[start..<end]))
        }
    }

    // ---- checksums ---------------------------------------------------------------------------

    /// Offset of the L4 checksum field, or nil when there is no L4 header we know.
    @usableFromInline var l4ChecksumOffset: Int? {
        guard layout.hasTransportHeader else { return nil }
        switch layout.proto {
        case IPProtocolNumber.tcp: return layout.l4Offset + 16
        case IPProtocolNumber.udp: return layout.l4Offset + 6
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6: return layout.l4Offset + 2
        default: return nil
        }
    }

    /// The pseudo-header sum for the current addresses and an L4 length (0 for ICMPv4).
    func pseudoHeaderSum(length: Int) -> UInt64 {
        if layout.proto == IPProtocolNumber.icmp { return 0 }
        switch layout.family {
        case .ipv4:
            let ip = IPv4Header(unchecked: buffer, at: 0)
            return InternetChecksum.pseudoHeaderSum(
                source: ip.source, destination: ip.destination, proto: layout.proto, length: length)
        case .ipv6:
            let ip = IPv6Header(unchecked: buffer, at: 0)
            return InternetChecksum.pseudoHeaderSum(
                source: ip.source, destination: ip.destination, proto: layout.proto, length: length)
        }
    }

    /// The L4 checksum computed over the whole datagram as it is now, or nil when the packet
    /// has no L4 header we know or is a fragment. A UDP result of 0 is given as 0xFFFF.
    public func computeTransportChecksum() -> UInt16? {
        guard layout.fragment == .unfragmented, let at = l4ChecksumOffset else { return nil }
        let length = layout.ipLength - layout.l4Offset
        let stored = buffer.u16(at)
        // Sum with the stored field, then take it out again: adding ~c subtracts c.
        let wide = pseudoHeaderSum(length: length) &+ UInt64(buffer.onesSum(layout.l4Offset, length)) &+ UInt64(~stored)
        let value = ~InternetChecksum.fold(wide)
        return value == 0 && layout.proto == IPProtocolNumber.udp ? 0xffff : value
    }

    /// Whether the stored L4 checksum verifies; nil when it cannot be checked (fragment, or no
    /// L4 header we know). UDP over IPv4 with checksum 0 ("none") counts as valid.
    public var isTransportChecksumValid: Bool? {
        guard layout.fragment == .unfragmented, let at = l4ChecksumOffset else { return nil }
        if layout.family == .ipv4 && layout.proto == IPProtocolNumber.udp && buffer.u16(at) == 0 { return true }
        let length = layout.ipLength - layout.l4Offset
        let wide = pseudoHeaderSum(length: length) &+ UInt64(buffer.onesSum(layout.l4Offset, length))
        return InternetChecksum.fold(wide) == 0xffff
    }

    /// Recomputes the IPv4 header checksum and the L4 checksum (UDP over IPv4 included, even
    /// when it was 0). Fragments keep their L4 checksum (it covers bytes not in this packet).
    public mutating func recomputeChecksums() {
        ipv4?.updateChecksum()
        if let at = l4ChecksumOffset, let value = computeTransportChecksum() { buffer.setU16(value, at) }
    }

    /// Stores a freshly computed L4 checksum, except for UDP over IPv4 without one.
    mutating func refreshTransportChecksum() {
        guard let at = l4ChecksumOffset else { return }
        if layout.family == .ipv4 && layout.proto == IPProtocolNumber.udp && buffer.u16(at) == 0 { return }
        if let value = computeTransportChecksum() { buffer.setU16(value, at) }
    }

    // ---- NAT -----------------------------------------------------------------------------------

    /// Rewrites source and destination addresses and ports to those of `tuple` at once (SVR's
    /// double NAT), updating the IPv4 header checksum and the L4 checksum incrementally (RFC
    /// 1624; the pseudo-header included). ICMP echo: the identifier becomes `tuple.sourcePort`
    /// and `destinationPort` is ignored; protocols without ports and later fragments only get
    /// new addresses. The protocol must stay the same and the addresses must be of the
    /// packet's family; nothing is changed when that is not so.
    public mutating func rewrite(to tuple: FiveTuple) throws(PacketError) {
        guard tuple.proto == layout.proto else { throw .protocolMismatch(packet: layout.proto, requested: tuple.proto) }
        let addressDelta: UInt64
        switch (layout.family, tuple.source, tuple.destination) {
        case (.ipv4, .v4(let source), .v4(let destination)):
            let ip = IPv4Header(unchecked: buffer, at: 0)
            addressDelta = InternetChecksum.delta(old: ip.source.value, new: source.value)
                &+ InternetChecksum.delta(old: ip.destination.value, new: destination.value)
            ip.checksum = InternetChecksum.update(ip.checksum, delta: addressDelta)
            ip.source = source
            ip.destination = destination
        case (.ipv6, .v6(let source), .v6(let destination)):
            let ip = IPv6Header(unchecked: buffer, at: 0)
            addressDelta = InternetChecksum.delta(old: ip.source, new: source)
                &+ InternetChecksum.delta(old: ip.destination, new: destination)
            ip.source = source
            ip.destination = destination
        default:
            throw .addressFamilyMismatch
        }
        var result = tuple
        let o = layout.l4Offset
        switch layout.proto {
        case IPProtocolNumber.tcp where layout.hasTransportHeader:
            let delta = addressDelta &+ rewritePorts(at: o, source: tuple.sourcePort, destination: tuple.destinationPort)
            buffer.setU16(InternetChecksum.update(buffer.u16(o + 16), delta: delta), o + 16)
        case IPProtocolNumber.udp where layout.hasTransportHeader:
            let delta = addressDelta &+ rewritePorts(at: o, source: tuple.sourcePort, destination: tuple.destinationPort)
            let old = buffer.u16(o + 6)
            if old != 0 || layout.family == .ipv6 {
                let new = InternetChecksum.update(old, delta: delta)
                buffer.setU16(new == 0 ? 0xffff : new, o + 6)
            }
        case IPProtocolNumber.icmp where layout.hasTransportHeader, IPProtocolNumber.icmpv6 where layout.hasTransportHeader:
            var delta: UInt64 = layout.proto == IPProtocolNumber.icmpv6 ? addressDelta : 0
            if ICMPHeader.isEcho(type: buffer.u8(o), proto: layout.proto) {
                delta &+= InternetChecksum.delta(old: buffer.u16(o + 4), new: tuple.sourcePort)
                buffer.setU16(tuple.sourcePort, o + 4)
            } else {
                result.sourcePort = 0
            }
            result.destinationPort = 0
            buffer.setU16(InternetChecksum.update(buffer.u16(o + 2), delta: delta), o + 2)
        default:
            result.sourcePort = 0
            result.destinationPort = 0
        }
        layout.tuple = result
    }

    /// Writes both ports of a TCP/UDP header and returns their checksum delta.
    func rewritePorts(at o: Int, source: UInt16, destination: UInt16) -> UInt64 {
        let delta = InternetChecksum.delta(old: buffer.u16(o), new: source)
            &+ InternetChecksum.delta(old: buffer.u16(o + 2), new: destination)
        buffer.setU16(source, o)
        buffer.setU16(destination, o + 2)
        return delta
    }

    /// Rewrites the source address and port (see `rewrite(to:)`).
    public mutating func rewriteSource(_ address: IPAddress, port: UInt16) throws(PacketError) {
        var t = layout.tuple
        t.source = address
        t.sourcePort = port
        try rewrite(to: t)
    }

    /// Rewrites the destination address and port (see `rewrite(to:)`).
    public mutating func rewriteDestination(_ address: IPAddress, port: UInt16) throws(PacketError) {
        var t = layout.tuple
        t.destination = address
        t.destinationPort = port
        try rewrite(to: t)
    }

    // ---- metadata and trailer --------------------------------------------------------------------

    /// Opens a gap of `count` bytes right after the L4 header, lets `write` fill it, and fixes
    /// lengths and checksums. The IP and L4 headers slide into the headroom (or, without
    /// headroom, the payload slides into the tailroom). For TCP the bytes become TCP payload.
    public mutating func insertAfterL4Header(count: Int, _ write: (UnsafeMutableRawBufferPointer) -> Void) throws(PacketError) {
        try prepareLengthChange(adding: count)
        let at = layout.payloadOffset
        try buffer.insertGap(count: count, at: at)
        buffer.withUnsafeMutableBytes { write(UnsafeMutableRawBufferPointer(rebasing: $0[at..<at + count])) }
        finishLengthChange(newIPLength: layout.ipLength + count)
    }

    /// Inserts `bytes` right after the L4 header (see `insertAfterL4Header(count:_:)`).
    public mutating func insertAfterL4Header(_ bytes: UnsafeRawBufferPointer) throws(PacketError) {
        try insertAfterL4Header(count: bytes.count) { gap in
            if let src = bytes.baseAddress { gap.baseAddress!.copyMemory(from: src, byteCount: bytes.count) }
        }
    }

    /// Removes `count` bytes right after the L4 header and fixes lengths and checksums.
    public mutating func stripAfterL4Header(count: Int) throws(PacketError) {
        try prepareLengthChange(removing: count)
        try buffer.removeBytes(count: count, at: layout.payloadOffset)
        finishLengthChange(newIPLength: layout.ipLength - count)
    }

    /// Appends `count` bytes at the end of the datagram (into the tailroom), lets `write` fill
    /// them, and fixes lengths and checksums.
    public mutating func appendTrailer(count: Int, _ write: (UnsafeMutableRawBufferPointer) -> Void) throws(PacketError) {
        try prepareLengthChange(adding: count)
        let at = layout.ipLength
        try buffer.growBack(by: count)
        buffer.withUnsafeMutableBytes { write(UnsafeMutableRawBufferPointer(rebasing: $0[at..<at + count])) }
        finishLengthChange(newIPLength: at + count)
    }

    /// Appends `bytes` at the end of the datagram (see `appendTrailer(count:_:)`).
    public mutating func appendTrailer(_ bytes: UnsafeRawBufferPointer) throws(PacketError) {
        try appendTrailer(count: bytes.count) { gap in
            if let src = bytes.baseAddress { gap.baseAddress!.copyMemory(from: src, byteCount: bytes.count) }
        }
    }

    /// Removes the last `count` bytes of the L4 payload and fixes lengths and checksums.
    public mutating func removeTrailer(count: Int) throws(PacketError) {
        try prepareLengthChange(removing: count)
        try buffer.shrinkBack(by: count)
        finishLengthChange(newIPLength: layout.ipLength - count)
    }

    /// Checks that a length edit is possible and drops link-layer padding behind the datagram.
    mutating func prepareLengthChange(adding count: Int) throws(PacketError) {
        guard layout.fragment == .unfragmented else { throw .fragmented }
        guard layout.hasTransportHeader else { throw .noTransportHeader(proto: layout.proto) }
        guard count >= 0 else { throw .lengthOutOfRange(requested: count, available: 0) }
        let newLength = layout.ipLength + count
        let limit = layout.family == .ipv4 ? 0xffff : 0xffff + 40
        guard newLength <= limit else { throw .packetTooLarge(length: newLength) }
        if buffer.count > layout.ipLength { try buffer.shrinkBack(by: buffer.count - layout.ipLength) }
    }

    /// Checks that `count` payload bytes can be removed (and drops link-layer padding).
    mutating func prepareLengthChange(removing count: Int) throws(PacketError) {
        try prepareLengthChange(adding: 0)
        guard count >= 0, count <= layout.payloadLength else {
            throw .lengthOutOfRange(requested: count, available: layout.payloadLength)
        }
    }

    /// Stores the new lengths and refreshes the checksums after a gap was opened or closed.
    mutating func finishLengthChange(newIPLength: Int) {
        switch layout.family {
        case .ipv4:
            let ip = IPv4Header(unchecked: buffer, at: 0)
            let new = UInt16(newIPLength)
            ip.checksum = InternetChecksum.update(ip.checksum, old: ip.totalLength, new: new)
            ip.totalLength = new
        case .ipv6:
            IPv6Header(unchecked: buffer, at: 0).payloadLength = UInt16(newIPLength - 40)
        }
        layout.ipLength = newIPLength
        if layout.proto == IPProtocolNumber.udp {
            buffer.setU16(UInt16(newIPLength - layout.l4Offset), layout.l4Offset + 4)
        }
        refreshTransportChecksum()
    }
}
