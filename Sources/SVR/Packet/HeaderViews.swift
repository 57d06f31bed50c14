// Non-copying header views. Each view is a packet buffer plus the offset of its header; the
// throwing initializers check that the whole header (options included) lies inside the packet,
// so the field accessors afterwards need no checks. Setters write the raw field only and do not
// touch any checksum: use `IPPacket`'s edits for checksum-maintaining changes, or call
// `IPPacket.recomputeChecksums()` afterwards.
//
// A view is valid until its packet buffer changes shape (insert, strip, grow, shrink).

/// Checks that a base IP header of `size` bytes with version `version` starts at `offset`;
/// returns the bytes available from there.
func checkIPHeader(_ buffer: PacketBuffer, _ offset: Int, version: UInt8, size: Int) throws(PacketError) -> Int {
    let available = buffer.count - offset
    guard offset >= 0, available > 0 else {
        throw available == 0 && offset == 0 ? .emptyPacket : .truncatedIPHeader(needed: size, available: max(available, 0))
    }
    let v = buffer.u8(offset) >> 4
    guard v == version else { throw .badVersion(v) }
    guard available >= size else { throw .truncatedIPHeader(needed: size, available: available) }
    return available
}

/// The IPv4 header (RFC 791), options included.
public struct IPv4Header {
    public let buffer: PacketBuffer
    /// Offset of the header inside the packet.
    public let offset: Int

    @inlinable init(unchecked buffer: PacketBuffer, at offset: Int) {
        self.buffer = buffer
        self.offset = offset
    }

    /// Checks version 4, IHL >= 5 and that the header with its options fits in the packet.
    /// The total length is not checked here (see `PacketLayout`).
    public init(_ buffer: PacketBuffer, at offset: Int = 0) throws(PacketError) {
        let available = try checkIPHeader(buffer, offset, version: 4, size: 20)
        let ihl = buffer.u8(offset) & 0x0f
        guard ihl >= 5 else { throw .ipv4HeaderLengthTooShort(ihl: ihl) }
        guard Int(ihl) * 4 <= available else { throw .truncatedIPHeader(needed: Int(ihl) * 4, available: available) }
        self.init(unchecked: buffer, at: offset)
    }

    @inlinable public var version: UInt8 { buffer.u8(offset) >> 4 }
    /// Header length in bytes (IHL × 4).
    @inlinable public var headerLength: Int { Int(buffer.u8(offset) & 0x0f) * 4 }
    /// Bytes of options (header length − 20).
    @inlinable public var optionsLength: Int { headerLength - 20 }
    /// DSCP and ECN.
    @inlinable public var typeOfService: UInt8 {
        get { buffer.u8(offset + 1) }
        nonmutating set { buffer.setU8(newValue, offset + 1) }
    }
    @inlinable public var totalLength: UInt16 {
        get { buffer.u16(offset + 2) }
        nonmutating set { buffer.setU16(newValue, offset + 2) }
    }
    @inlinable public var identification: UInt16 {
        get { buffer.u16(offset + 4) }
        nonmutating set { buffer.setU16(newValue, offset + 4) }
    }
    /// Flags (3 bits) and fragment offset (13 bits) as on the wire.
    @inlinable public var flagsAndFragmentOffset: UInt16 {
        get { buffer.u16(offset + 6) }
        nonmutating set { buffer.setU16(newValue, offset + 6) }
    }
    @inlinable public var dontFragment: Bool { flagsAndFragmentOffset & 0x4000 != 0 }
    @inlinable public var moreFragments: Bool { flagsAndFragmentOffset & 0x2000 != 0 }
    /// Fragment offset in 8-byte units.
    @inlinable public var fragmentOffset: UInt16 { flagsAndFragmentOffset & 0x1fff }
    @inlinable public var ttl: UInt8 {
        get { buffer.u8(offset + 8) }
        nonmutating set { buffer.setU8(newValue, offset + 8) }
    }
    @inlinable public var proto: UInt8 {
        get { buffer.u8(offset + 9) }
        nonmutating set { buffer.setU8(newValue, offset + 9) }
    }
    @inlinable public var checksum: UInt16 {
        get { buffer.u16(offset + 10) }
        nonmutating set { buffer.setU16(newValue, offset + 10) }
    }
    @inlinable public var source: IPv4Address {
        get { IPv4Address(buffer.u32(offset + 12)) }
        nonmutating set { buffer.setU32(newValue.value, offset + 12) }
    }
    @inlinable public var destination: IPv4Address {
        get { IPv4Address(buffer.u32(offset + 16)) }
        nonmutating set { buffer.setU32(newValue.value, offset + 16) }
    }

    /// The header checksum computed over the header as it is now (the field counted as zero).
    @inlinable public func computeChecksum() -> UInt16 {
        InternetChecksum.update(~buffer.onesSum(offset, headerLength), old: checksum, new: 0)
    }
    /// Whether the stored header checksum is correct.
    @inlinable public var isChecksumValid: Bool { buffer.onesSum(offset, headerLength) == 0xffff }
    /// Recomputes and stores the header checksum.
    @inlinable public func updateChecksum() { checksum = computeChecksum() }
}

/// The fixed 40-byte IPv6 header (RFC 8200). Extension headers are handled by `PacketLayout`.
public struct IPv6Header {
    public let buffer: PacketBuffer
    public let offset: Int

    @inlinable init(unchecked buffer: PacketBuffer, at offset: Int) {
        self.buffer = buffer
        self.offset = offset
    }

    /// Checks version 6 and that the 40-byte header fits in the packet.
    public init(_ buffer: PacketBuffer, at offset: Int = 0) throws(PacketError) {
        _ = try checkIPHeader(buffer, offset, version: 6, size: 40)
        self.init(unchecked: buffer, at: offset)
    }

    @inlinable public var version: UInt8 { buffer.u8(offset) >> 4 }
    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: buffer.u32(offset) >> 20) }
    @inlinable public var flowLabel: UInt32 { buffer.u32(offset) & 0xf_ffff }
    @inlinable public var payloadLength: UInt16 {
        get { buffer.u16(offset + 4) }
        nonmutating set { buffer.setU16(newValue, offset + 4) }
    }
    /// The next header of the base header (the first extension header or the L4 protocol).
    @inlinable public var nextHeader: UInt8 {
        get { buffer.u8(offset + 6) }
        nonmutating set { buffer.setU8(newValue, offset + 6) }
    }
    @inlinable public var hopLimit: UInt8 {
        get { buffer.u8(offset + 7) }
        nonmutating set { buffer.setU8(newValue, offset + 7) }
    }
    @inlinable public var source: IPv6Address {
        get { buffer.ipv6(offset + 8) }
        nonmutating set { buffer.setIPv6(newValue, offset + 8) }
    }
    @inlinable public var destination: IPv6Address {
        get { buffer.ipv6(offset + 24) }
        nonmutating set { buffer.setIPv6(newValue, offset + 24) }
    }
}

/// Checks that `needed` bytes of protocol `proto` fit between `offset` and `end`.
@inlinable
func checkTransport(_ proto: UInt8, _ buffer: PacketBuffer, _ offset: Int, _ end: Int?, _ needed: Int) throws(PacketError) -> Int {
    let limit = min(end ?? buffer.count, buffer.count)
    let available = limit - offset
    guard offset >= 0, available >= needed else {
        throw .truncatedTransportHeader(proto: proto, needed: needed, available: max(available, 0))
    }
    return available
}

/// TCP flags (the low 8 bits of byte 13).
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// The TCP header (RFC 9293), options included.
public struct TCPHeader {
    public let buffer: PacketBuffer
    public let offset: Int

    @inlinable init(unchecked buffer: PacketBuffer, at offset: Int) {
        self.buffer = buffer
        self.offset = offset
    }

    /// Checks that 20 bytes fit, data offset >= 5 and that the options fit before `end`
    /// (default: the end of the packet).
    public init(_ buffer: PacketBuffer, at offset: Int, end: Int? = nil) throws(PacketError) {
        let available = try checkTransport(IPProtocolNumber.tcp, buffer, offset, end, 20)
        let dataOffset = buffer.u8(offset + 12) >> 4
        guard dataOffset >= 5 else { throw .tcpDataOffsetTooShort(dataOffset: dataOffset) }
        guard Int(dataOffset) * 4 <= available else {
            throw .tcpHeaderBeyondPacket(headerLength: Int(dataOffset) * 4, available: available)
        }
        self.init(unchecked: buffer, at: offset)
    }

    @inlinable public var sourcePort: UInt16 {
        get { buffer.u16(offset) }
        nonmutating set { buffer.setU16(newValue, offset) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { buffer.u16(offset + 2) }
        nonmutating set { buffer.setU16(newValue, offset + 2) }
    }
    @inlinable public var sequenceNumber: UInt32 {
        get { buffer.u32(offset + 4) }
        nonmutating set { buffer.setU32(newValue, offset + 4) }
    }
    @inlinable public var acknowledgmentNumber: UInt32 {
        get { buffer.u32(offset + 8) }
        nonmutating set { buffer.setU32(newValue, offset + 8) }
    }
    /// Data offset in 32-bit words.
    @inlinable public var dataOffset: UInt8 { buffer.u8(offset + 12) >> 4 }
    /// Header length in bytes (data offset × 4).
    @inlinable public var headerLength: Int { Int(dataOffset) * 4 }
    /// Bytes of TCP options.
    @inlinable public var optionsLength: Int { headerLength - 20 }
    @inlinable public var flags: TCPFlags {
        get { TCPFlags(rawValue: buffer.u8(offset + 13)) }
        nonmutating set { buffer.setU8(newValue.rawValue, offset + 13) }
    }
    @inlinable public var window: UInt16 {
        get { buffer.u16(offset + 14) }
        nonmutating set { buffer.setU16(newValue, offset + 14) }
    }
    @inlinable public var checksum: UInt16 {
        get { buffer.u16(offset + 16) }
        nonmutating set { buffer.setU16(newValue, offset + 16) }
    }
    @inlinable public var urgentPointer: UInt16 {
        get { buffer.u16(offset + 18) }
        nonmutating set { buffer.setU16(newValue, offset + 18) }
    }
}

/// The UDP header (RFC 768).
public struct UDPHeader {
    public let buffer: PacketBuffer
    public let offset: Int

    @inlinable init(unchecked buffer: PacketBuffer, at offset: Int) {
        self.buffer = buffer
        self.offset = offset
    }

    /// Checks that the 8-byte header fits before `end` (default: the end of the packet). The
    /// length field is checked against the IP payload by `PacketLayout`.
    public init(_ buffer: PacketBuffer, at offset: Int, end: Int? = nil) throws(PacketError) {
        _ = try checkTransport(IPProtocolNumber.udp, buffer, offset, end, 8)
        self.init(unchecked: buffer, at: offset)
    }

    @inlinable public var sourcePort: UInt16 {
        get { buffer.u16(offset) }
        nonmutating set { buffer.setU16(newValue, offset) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { buffer.u16(offset + 2) }
        nonmutating set { buffer.setU16(newValue, offset + 2) }
    }
    @inlinable public var length: UInt16 {
        get { buffer.u16(offset + 4) }
        nonmutating set { buffer.setU16(newValue, offset + 4) }
    }
    /// 0 over IPv4 means "no checksum".
    @inlinable public var checksum: UInt16 {
        get { buffer.u16(offset + 6) }
        nonmutating set { buffer.setU16(newValue, offset + 6) }
    }
}

/// The first 8 bytes of an ICMP (RFC 792) or ICMPv6 (RFC 4443) message.
public struct ICMPHeader {
    public let buffer: PacketBuffer
    public let offset: Int
    /// `IPProtocolNumber.icmp` or `.icmpv6`: decides which types are echo messages.
    public let proto: UInt8

    @inlinable init(unchecked buffer: PacketBuffer, at offset: Int, proto: UInt8) {
        self.buffer = buffer
        self.offset = offset
        self.proto = proto
    }

    /// Checks that 8 bytes fit before `end` (default: the end of the packet).
    public init(_ buffer: PacketBuffer, at offset: Int, proto: UInt8, end: Int? = nil) throws(PacketError) {
        _ = try checkTransport(proto, buffer, offset, end, 8)
        self.init(unchecked: buffer, at: offset, proto: proto)
    }

    @inlinable public var type: UInt8 {
        get { buffer.u8(offset) }
        nonmutating set { buffer.setU8(newValue, offset) }
    }
    @inlinable public var code: UInt8 {
        get { buffer.u8(offset + 1) }
        nonmutating set { buffer.setU8(newValue, offset + 1) }
    }
    @inlinable public var checksum: UInt16 {
        get { buffer.u16(offset + 2) }
        nonmutating set { buffer.setU16(newValue, offset + 2) }
    }
    /// Echo identifier (bytes 4–5; meaningful for echo request/reply only).
    @inlinable public var identifier: UInt16 {
        get { buffer.u16(offset + 4) }
        nonmutating set { buffer.setU16(newValue, offset + 4) }
    }
    /// Echo sequence number (bytes 6–7; meaningful for echo request/reply only).
    @inlinable public var sequenceNumber: UInt16 {
        get { buffer.u16(offset + 6) }
        nonmutating set { buffer.setU16(newValue, offset + 6) }
    }
    /// Whether this is an echo request or reply (ICMP 8/0, ICMPv6 128/129).
    @inlinable public var isEcho: Bool { ICMPHeader.isEcho(type: type, proto: proto) }

    @inlinable static func isEcho(type: UInt8, proto: UInt8) -> Bool {
        proto == IPProtocolNumber.icmpv6 ? (type == 128 || type == 129) : (type == 8 || type == 0)
    }
}
