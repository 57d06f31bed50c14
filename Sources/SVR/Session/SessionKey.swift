// Fixed-size session lookup keys.
//
// A key is five `UInt64` words: source and destination address as 128-bit values (IPv4 in
// the IPv4-mapped form ::ffff:a.b.c.d, so the families never collide), and one word packing
// source port, destination port, protocol, a side tag (LAN or WAN) and a zone (the LAN
// interface, 0 for WAN keys). The packet parser can build one straight from header fields.

/// Where a packet was seen: on a LAN interface or on a waypoint (WAN).
public enum SessionSide: UInt8, Sendable {
    case lan = 1
    case wan = 2
}

/// The lookup key of one direction of a session on one side.
public struct SessionKey: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var sourceHigh: UInt64
    public var sourceLow: UInt64
    public var destinationHigh: UInt64
    public var destinationLow: UInt64
    /// sourcePort << 48 | destinationPort << 32 | proto << 24 | side << 16 | zone.
    public var packed: UInt64

    static let mapped: UInt64 = 0x0000_FFFF_0000_0000

    /// A key from IPv4 header fields (host order).
    @inlinable
    public init(v4Source: UInt32, v4Destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, proto: UInt8,
                side: SessionSide, zone: UInt16 = 0) {
        sourceHigh = 0
        sourceLow = 0x0000_FFFF_0000_0000 | UInt64(v4Source)
        destinationHigh = 0
        destinationLow = 0x0000_FFFF_0000_0000 | UInt64(v4Destination)
        packed = Self.pack(sourcePort, destinationPort, proto, side, zone)
    }

    /// A key from IPv6 header fields.
    @inlinable
    public init(v6Source: IPv6Address, v6Destination: IPv6Address, sourcePort: UInt16, destinationPort: UInt16,
                proto: UInt8, side: SessionSide, zone: UInt16 = 0) {
        sourceHigh = v6Source.high
        sourceLow = v6Source.low
        destinationHigh = v6Destination.high
        destinationLow = v6Destination.low
        packed = Self.pack(sourcePort, destinationPort, proto, side, zone)
    }

    /// A key from a 5-tuple. Mixed families are not meaningful; each address is encoded alone.
    public init(_ t: FiveTuple, side: SessionSide, zone: UInt16 = 0) {
        (sourceHigh, sourceLow) = Self.words(t.source)
        (destinationHigh, destinationLow) = Self.words(t.destination)
        packed = Self.pack(t.sourcePort, t.destinationPort, t.proto, side, zone)
    }

    @inlinable
    static func pack(_ sp: UInt16, _ dp: UInt16, _ proto: UInt8, _ side: SessionSide, _ zone: UInt16) -> UInt64 {
        UInt64(sp) << 48 | UInt64(dp) << 32 | UInt64(proto) << 24 | UInt64(side.rawValue) << 16 | UInt64(zone)
    }

    static func words(_ a: IPAddress) -> (UInt64, UInt64) {
        switch a {
        case .v4(let v): (0, mapped | UInt64(v.value))
        case .v6(let v): (v.high, v.low)
        }
    }

    static func address(_ hi: UInt64, _ lo: UInt64) -> IPAddress {
        hi == 0 && lo & 0xFFFF_FFFF_0000_0000 == mapped
            ? .v4(IPv4Address(UInt32(truncatingIfNeeded: lo)))
            : .v6(IPv6Address(high: hi, low: lo))
    }

    public var sourcePort: UInt16 { UInt16(truncatingIfNeeded: packed >> 48) }
    public var destinationPort: UInt16 { UInt16(truncatingIfNeeded: packed >> 32) }
    public var proto: UInt8 { UInt8(truncatingIfNeeded: packed >> 24) }
    public var side: SessionSide { SessionSide(rawValue: UInt8(truncatingIfNeeded: packed >> 16)) ?? .lan }
    public var zone: UInt16 { UInt16(truncatingIfNeeded: packed) }
    public var source: IPAddress { Self.address(sourceHigh, sourceLow) }
    public var destination: IPAddress { Self.address(destinationHigh, destinationLow) }

    /// The 5-tuple this key was made from (side and zone dropped).
    public var tuple: FiveTuple {
        FiveTuple(source: source, destination: destination, sourcePort: sourcePort, destinationPort: destinationPort, proto: proto)
    }

    /// The key of the opposite direction on the same side and zone (e.g. the waypoint tuple to
    /// send on, from the peer → us key that was registered).
    public var reversed: SessionKey {
        var k = self
        k.sourceHigh = destinationHigh
        k.sourceLow = destinationLow
        k.destinationHigh = sourceHigh
        k.destinationLow = sourceLow
        k.packed = UInt64(destinationPort) << 48 | UInt64(sourcePort) << 32 | packed & 0xFFFF_FFFF
        return k
    }

    public var description: String { "\(side) \(tuple)" }

    /// Hash of the key under `seed` (two 128-bit multiplies; the seed is random per table so
    /// remote senders cannot aim tuples at one bucket).
    @inline(__always)
    func hash(_ seed: (UInt64, UInt64, UInt64)) -> UInt64 {
        let a = (sourceHigh ^ seed.0).multipliedFullWidth(by: sourceLow ^ 0x9E37_79B9_7F4A_7C15)
        let b = (destinationHigh ^ seed.1).multipliedFullWidth(by: destinationLow ^ 0xBF58_476D_1CE4_E5B9)
        let c = (packed ^ seed.2).multipliedFullWidth(by: 0x94D0_49BB_1331_11EB)
        let h = (a.high ^ a.low) &+ (b.high ^ b.low) &+ (c.high ^ c.low)
        let m = (h ^ seed.0).multipliedFullWidth(by: 0x2545_F491_4F6C_DD1D)
        return m.high ^ m.low
    }
}
