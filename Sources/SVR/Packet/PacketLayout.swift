// Parsing: one pass over the IP header (IPv6 extension headers skipped) and the L4 header,
// producing the offsets every later stage needs and the packet's 5-tuple. Every length field
// is checked against the bytes actually received before anything is read behind it.

/// Where a packet sits in a fragmented datagram.
public enum FragmentPosition: Sendable, Hashable {
    /// A whole datagram.
    case unfragmented
    /// The first fragment: its L4 header is present, the rest of the datagram is not.
    case first
    /// A later fragment: no L4 header (ports are 0 in the tuple).
    case later
}

/// IP family of a packet.
public enum IPFamily: Sendable, Hashable {
    case ipv4
    case ipv6
}

/// The layout of a parsed IP packet: offsets are from the first packet byte.
public struct PacketLayout: Sendable, Hashable {
    // Field order: the tuple and the one-byte fields first, the Ints last, so the struct ends
    // on a whole word and copies of it do not stall on partly forwarded stores.

    /// Addresses, ports and protocol. ICMP echo: source port = identifier, destination port
    /// = 0 (spec O8); other protocols and later fragments: ports 0.
    public var tuple: FiveTuple
    public var family: IPFamily
    /// The L4 protocol (for IPv6: the next header after the extension headers).
    public var proto: UInt8
    public var fragment: FragmentPosition
    /// Bytes of the IP datagram (IPv4 total length, or 40 + IPv6 payload length). Bytes of
    /// the buffer beyond it are link-layer padding and are dropped by length-changing edits.
    public var ipLength: Int
    /// Offset of the byte that holds `proto` (IPv4 byte 9, or the next-header byte of the
    /// IPv6 base header or of the last extension header).
    public var protocolFieldOffset: Int
    /// Offset of the L4 header (= IP header length including IPv4 options and IPv6
    /// extension headers).
    public var l4Offset: Int
    /// L4 header length (TCP with options, UDP 8, ICMP/ICMPv6 8); 0 when the packet has no
    /// L4 header we know (other protocols, later fragments).
    public var l4HeaderLength: Int

    /// Offset of the first L4 payload byte (where SVR metadata goes).
    @inlinable public var payloadOffset: Int { l4Offset + l4HeaderLength }
    /// Bytes of L4 payload.
    @inlinable public var payloadLength: Int { ipLength - payloadOffset }
    /// Whether the packet has an L4 header we can edit.
    @inlinable public var hasTransportHeader: Bool { l4HeaderLength > 0 }

    /// Parses and validates the IP and L4 headers of the packet in `buffer`: version, header
    /// lengths (IHL >= 5, TCP data offset >= 5), length fields against the bytes received,
    /// UDP length against the IP payload, IPv6 extension headers. Checksums are not verified
    /// here (see `IPv4Header.isChecksumValid`, `IPPacket.isTransportChecksumValid`).
    ///
    /// One initializer fills every field once: delegating through initializers that each
    /// return the whole struct cost store-forwarding stalls on every copy.
    public init(parsing buffer: PacketBuffer) throws(PacketError) {
        guard buffer.count > 0 else { throw .emptyPacket }
        let ip: IPPart
        let source: IPAddress
        let destination: IPAddress
        switch buffer.u8(0) >> 4 {
        case 4:
            ip = try Self.parseIPv4(buffer)
            source = .v4(IPv4Address(buffer.u32(12)))
            destination = .v4(IPv4Address(buffer.u32(16)))
        case 6:
            ip = try Self.parseIPv6(buffer)
            source = .v6(buffer.ipv6(8))
            destination = .v6(buffer.ipv6(24))
        case let v:
            throw .badVersion(v)
        }
        let l4 = try Self.parseTransport(buffer, ip)
        family = ip.family
        ipLength = ip.ipLength
        proto = ip.proto
        protocolFieldOffset = ip.protocolFieldOffset
        l4Offset = ip.l4Offset
        l4HeaderLength = l4.headerLength
        fragment = ip.fragment
        tuple = FiveTuple(
            source: source, destination: destination, sourcePort: l4.sourcePort,
            destinationPort: l4.destinationPort, proto: ip.proto)
    }

    /// What the IP layer tells the L4 parser.
    struct IPPart {
        var family: IPFamily
        var ipLength: Int
        var proto: UInt8
        var protocolFieldOffset: Int
        var l4Offset: Int
        var fragment: FragmentPosition
    }

    static func parseIPv4(_ buffer: PacketBuffer) throws(PacketError) -> IPPart {
        let ip = try IPv4Header(buffer)
        let headerLength = ip.headerLength
        let total = Int(ip.totalLength)
        guard total >= headerLength, total <= buffer.count else {
            throw .ipv4TotalLengthInvalid(totalLength: total, headerLength: headerLength, available: buffer.count)
        }
        let fragment: FragmentPosition =
            ip.fragmentOffset != 0 ? .later : (ip.moreFragments ? .first : .unfragmented)
        return IPPart(
            family: .ipv4, ipLength: total, proto: ip.proto, protocolFieldOffset: 9,
            l4Offset: headerLength, fragment: fragment)
    }

    static func parseIPv6(_ buffer: PacketBuffer) throws(PacketError) -> IPPart {
        let ip = try IPv6Header(buffer)
        let payload = Int(ip.payloadLength)
        guard payload > 0 || ip.nextHeader != 0 else { throw .ipv6Jumbogram }
        guard payload <= buffer.count - 40 else {
            throw .ipv6PayloadLengthExceedsBuffer(payloadLength: payload, available: buffer.count - 40)
        }
        let end = 40 + payload
        var next = ip.nextHeader
        var nextOffset = 6
        var at = 40
        var fragment = FragmentPosition.unfragmented
        // Each extension header is at least 8 bytes, so the loop ends within the packet.
        extensionHeaders: while true {
            let length: Int
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options: (len + 1) × 8
                guard end - at >= 8 else { throw .truncatedExtensionHeader(nextHeader: next, offset: at) }
                length = (Int(buffer.u8(at + 1)) + 1) * 8
            case 51:  // authentication header: (len + 2) × 4
                guard end - at >= 8 else { throw .truncatedExtensionHeader(nextHeader: next, offset: at) }
                length = (Int(buffer.u8(at + 1)) + 2) * 4
            case 44:  // fragment header, 8 bytes
                guard end - at >= 8 else { throw .truncatedExtensionHeader(nextHeader: next, offset: at) }
                length = 8
                let offsetAndFlags = buffer.u16(at + 2)
                if offsetAndFlags & 0xfff8 != 0 {
                    fragment = .later
                } else if offsetAndFlags & 1 != 0 {
                    fragment = .first
                }
            case 135, 139, 140, 253, 254:  // mobility, HIP, shim6, experiments
                throw .unsupportedExtensionHeader(next)
            default:
                break extensionHeaders
            }
            guard end - at >= length else { throw .truncatedExtensionHeader(nextHeader: next, offset: at) }
            next = buffer.u8(at)
            nextOffset = at
            at += length
            // A later fragment's remaining bytes are not headers.
            if fragment == .later { break extensionHeaders }
        }
        return IPPart(
            family: .ipv6, ipLength: end, proto: next, protocolFieldOffset: nextOffset,
            l4Offset: at, fragment: fragment)
    }

    /// Validates the L4 header; returns its length and the ports of the tuple.
    static func parseTransport(
        _ buffer: PacketBuffer, _ ip: IPPart
    ) throws(PacketError) -> (headerLength: Int, sourcePort: UInt16, destinationPort: UInt16) {
        if ip.fragment == .later { return (0, 0, 0) }
        let l4Offset = ip.l4Offset
        let ipLength = ip.ipLength
        switch ip.proto {
        case IPProtocolNumber.tcp:
            let tcp = try TCPHeader(buffer, at: l4Offset, end: ipLength)
            return (tcp.headerLength, tcp.sourcePort, tcp.destinationPort)
        case IPProtocolNumber.udp:
            let udp = try UDPHeader(buffer, at: l4Offset, end: ipLength)
            let udpLength = Int(udp.length)
            let available = ipLength - l4Offset
            // A first fragment holds only part of the datagram the UDP length describes.
            guard udpLength >= 8, ip.fragment == .first ? udpLength >= available : udpLength == available else {
                throw .udpLengthInvalid(udpLength: udpLength, available: available)
            }
            return (8, udp.sourcePort, udp.destinationPort)
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6:
            let icmp = try ICMPHeader(buffer, at: l4Offset, proto: ip.proto, end: ipLength)
            return (8, icmp.isEcho ? icmp.identifier : 0, 0)
        default:
            return (0, 0, 0)
        }
    }
}
