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
    /// IPv6 uses the base header's destination; with a routing header RFC 8200 §8.1 wants the
    /// final destination instead, which is not handled (such packets do not verify here).
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
        // Works on copies of the (pointer-like) buffer and of the few layout fields it needs:
        // calling methods of `self` here would copy the whole packet struct.
        let b = buffer
        let proto = layout.proto
        let family = layout.family
        guard tuple.proto == proto else { throw .protocolMismatch(packet: proto, requested: tuple.proto) }
        let addressDelta: UInt64
        switch (family, tuple.source, tuple.destination) {
        case (.ipv4, .v4(let source), .v4(let destination)):
            addressDelta = InternetChecksum.delta(old: b.u32(12), new: source.value)
                &+ InternetChecksum.delta(old: b.u32(16), new: destination.value)
            b.setU16(InternetChecksum.update(b.u16(10), delta: addressDelta), 10)
            b.setU32(source.value, 12)
            b.setU32(destination.value, 16)
        case (.ipv6, .v6(let source), .v6(let destination)):
            addressDelta = InternetChecksum.delta(old: b.ipv6(8), new: source)
                &+ InternetChecksum.delta(old: b.ipv6(24), new: destination)
            b.setIPv6(source, 8)
            b.setIPv6(destination, 24)
        default:
            throw .addressFamilyMismatch
        }
        var sourcePort = tuple.sourcePort
        var destinationPort = tuple.destinationPort
        let o = layout.l4Offset
        switch proto {
        case IPProtocolNumber.tcp where layout.hasTransportHeader:
            let delta = addressDelta &+ Self.rewritePorts(b, at: o, source: sourcePort, destination: destinationPort)
            b.setU16(InternetChecksum.update(b.u16(o + 16), delta: delta), o + 16)
        case IPProtocolNumber.udp where layout.hasTransportHeader:
            let delta = addressDelta &+ Self.rewritePorts(b, at: o, source: sourcePort, destination: destinationPort)
            let old = b.u16(o + 6)
            if old != 0 || family == .ipv6 {
                let new = InternetChecksum.update(old, delta: delta)
                b.setU16(new == 0 ? 0xffff : new, o + 6)
            }
        case IPProtocolNumber.icmp where layout.hasTransportHeader, IPProtocolNumber.icmpv6 where layout.hasTransportHeader:
            var delta: UInt64 = proto == IPProtocolNumber.icmpv6 ? addressDelta : 0
            if ICMPHeader.isEcho(type: b.u8(o), proto: proto) {
                delta &+= InternetChecksum.delta(old: b.u16(o + 4), new: sourcePort)
                b.setU16(sourcePort, o + 4)
            } else {
                sourcePort = 0
            }
            destinationPort = 0
            b.setU16(InternetChecksum.update(b.u16(o + 2), delta: delta), o + 2)
        default:
            sourcePort = 0
            destinationPort = 0
        }
        layout.tuple = FiveTuple(
            source: tuple.source, destination: tuple.destination, sourcePort: sourcePort,
            destinationPort: destinationPort, proto: proto)
    }

    /// Writes both ports of a TCP/UDP header and returns their checksum delta.
    @inline(__always)
    static func rewritePorts(_ b: PacketBuffer, at o: Int, source: UInt16, destination: UInt16) -> UInt64 {
        let delta = InternetChecksum.delta(old: b.u16(o), new: source)
            &+ InternetChecksum.delta(old: b.u16(o + 2), new: destination)
        b.setU16(source, o)
        b.setU16(destination, o + 2)
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
        // The gap starts at an even L4 offset; an even count keeps the payload's word alignment,
        // so the checksum only gains the new bytes. An odd count needs a full sum.
        let delta: UInt64? = count & 1 == 0 ? UInt64(buffer.onesSum(at, count)) : nil
        finishLengthChange(newIPLength: layout.ipLength + count, dataDelta: delta)
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
        let at = layout.payloadOffset
        let delta: UInt64? = count & 1 == 0 ? UInt64(~buffer.onesSum(at, count)) : nil
        try buffer.removeBytes(count: count, at: at)
        finishLengthChange(newIPLength: layout.ipLength - count, dataDelta: delta)
    }

    /// Appends `count` bytes at the end of the datagram (into the tailroom), lets `write` fill
    /// them, and fixes lengths and checksums.
    public mutating func appendTrailer(count: Int, _ write: (UnsafeMutableRawBufferPointer) -> Void) throws(PacketError) {
        try prepareLengthChange(adding: count)
        let at = layout.ipLength
        try buffer.growBack(by: count)
        buffer.withUnsafeMutableBytes { write(UnsafeMutableRawBufferPointer(rebasing: $0[at..<at + count])) }
        finishLengthChange(newIPLength: at + count, dataDelta: UInt64(trailerSum(at: at, count: count)))
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
        let at = layout.ipLength - count
        let delta = UInt64(~trailerSum(at: at, count: count))
        try buffer.shrinkBack(by: count)
        finishLengthChange(newIPLength: at, dataDelta: delta)
    }

    /// The checksum contribution of `count` bytes at the end of the L4 data: bytes at an odd
    /// L4 offset pair up the other way round, which byte-swaps their sum.
    func trailerSum(at: Int, count: Int) -> UInt16 {
        let sum = buffer.onesSum(at, count)
        return (at - layout.l4Offset) & 1 == 0 ? sum : sum.byteSwapped
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

    /// Stores the new lengths and updates the checksums after a gap was opened or closed.
    /// `dataDelta` is the one's complement change of the L4 bytes, or nil to sum them again.
    mutating func finishLengthChange(newIPLength: Int, dataDelta: UInt64?) {
        let b = buffer
        let l4 = layout.l4Offset
        let oldL4Length = UInt16(layout.ipLength - l4)
        let newL4Length = UInt16(newIPLength - l4)
        switch layout.family {
        case .ipv4:
            let old = b.u16(2)
            let new = UInt16(newIPLength)
            b.setU16(InternetChecksum.update(b.u16(10), old: old, new: new), 10)
            b.setU16(new, 2)
        case .ipv6:
            b.setU16(UInt16(newIPLength - 40), 4)
        }
        layout.ipLength = newIPLength
        let isUDP = layout.proto == IPProtocolNumber.udp
        if isUDP { b.setU16(newL4Length, l4 + 4) }
        guard let dataDelta, let at = l4ChecksumOffset else {
            refreshTransportChecksum()
            return
        }
        let old = b.u16(at)
        if isUDP && old == 0 && layout.family == .ipv4 { return }  // no checksum
        var delta = dataDelta
        // The pseudo-header length (not for ICMPv4) and the UDP length field both change.
        let lengthDelta = InternetChecksum.delta(old: oldL4Length, new: newL4Length)
        if layout.proto != IPProtocolNumber.icmp { delta &+= lengthDelta }
        if isUDP { delta &+= lengthDelta }
        let new = InternetChecksum.update(old, delta: delta)
        b.setU16(isUDP && new == 0 ? 0xffff : new, at)
    }
}
