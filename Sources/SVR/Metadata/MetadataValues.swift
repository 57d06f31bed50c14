// Typed values carried inside metadata TLVs (spec §5, §5.1-§5.3, §9.3, §9.4): type numbers,
// fixed-layout structures and the two code tables.

/// A TLV type number (spec §5).
public struct MetadataTLVType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let fragment = Self(1)
    public static let forwardContextV4 = Self(2)
    public static let forwardContextV6 = Self(3)
    public static let reverseContextV4 = Self(4)
    public static let reverseContextV6 = Self(5)
    public static let sessionUUID = Self(6)
    public static let tenant = Self(7)
    public static let globalInterfaceID = Self(8)
    public static let service = Self(10)
    public static let sessionEncrypted = Self(11)
    public static let tcpSyn = Self(12)
    public static let sessionCount = Self(13)
    public static let sourceRouter = Self(14)
    public static let securityPolicy = Self(15)
    public static let securityID = Self(16)
    public static let destinationRouter = Self(17)
    public static let disableForwardMetadata = Self(18)
    public static let peerPathway = Self(19)
    public static let icmpErrorLocationV4 = Self(20)
    public static let icmpErrorLocationV6 = Self(21)
    public static let control = Self(24)
    public static let sourceNATAddress = Self(25)
    public static let pathMetrics = Self(26)
    public static let modifyRequest = Self(28)
    public static let applicationName = Self(35)
    public static let remainingSessionTime = Self(42)
    /// Length 1: session health check; longer: session key material (spec O2).
    public static let healthCheckOrSessionKey = Self(46)
    public static let multicastGroup = Self(50)
    public static let multicastEgressList = Self(51)

    /// Whether the codec decodes this type (everything else is skipped and counted).
    public var isKnown: Bool {
        switch rawValue {
        case 1...8, 10...21, 24, 25, 26, 28, 35, 42, 46, 50, 51: true
        default: false
        }
    }

    /// Bit used to detect a second TLV of the same kind in one block; the IPv4 and IPv6 forms of
    /// a TLV share a bit. Only meaningful for known types (all below 64).
    var duplicateBit: UInt64 {
        switch rawValue {
        case 3: 1 << 2
        case 5: 1 << 4
        case 21: 1 << 20
        default: 1 << UInt64(rawValue & 63)
        }
    }

    public var description: String { "TLV \(rawValue)" }
}

/// Fragment TLV value (type 1, 10 bytes, spec §5.1).
public struct FragmentInfo: Hashable, Sendable {
    /// Fragment group identifier chosen by the fragmenting router.
    public var extendedID: UInt32
    /// IPv4 identification of the original packet.
    public var originalID: UInt16
    /// Bit 0 of the flags word (reserved, carried as received).
    public var reservedFlag: Bool
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// Fragment offset in 8-byte units (13 bits).
    public var offset: UInt16
    /// Largest fragment seen, in bytes.
    public var largestSeenFragment: UInt16

    public init(
        extendedID: UInt32, originalID: UInt16, reservedFlag: Bool = false, dontFragment: Bool,
        moreFragments: Bool, offset: UInt16, largestSeenFragment: UInt16
    ) {
        self.extendedID = extendedID
        self.originalID = originalID
        self.reservedFlag = reservedFlag
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.offset = offset
        self.largestSeenFragment = largestSeenFragment
    }

    /// The flags/offset word as on the wire (IPv4 layout).
    var flagsAndOffset: UInt16 {
        (reservedFlag ? 0x8000 : 0) | (dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0)
            | offset
    }

    init(flagsAndOffset w: UInt16, extendedID: UInt32, originalID: UInt16, largest: UInt16) {
        self.init(
            extendedID: extendedID, originalID: originalID, reservedFlag: w & 0x8000 != 0,
            dontFragment: w & 0x4000 != 0, moreFragments: w & 0x2000 != 0, offset: w & 0x1FFF,
            largestSeenFragment: largest)
    }
}

/// Path metrics TLV value (type 26, 10 bytes, spec §5.2, semantics §7.3).
public struct PathMetrics: Hashable, Sendable {
    /// Sender's current color (4 bits).
    public var txColor: UInt8
    /// Sender's 28-bit millisecond clock at send time.
    public var txTime: UInt32
    /// Latest color received from the peer (4 bits).
    public var rxColor: UInt8
    /// Latest peer time received (28 bits, ms).
    public var rxTime: UInt32
    /// The packet only carries metrics and is consumed.
    public var drop: Bool
    /// Packets received in the peer's previous color block (15 bits).
    public var previousRxColorCount: UInt16

    public init(
        txColor: UInt8, txTime: UInt32, rxColor: UInt8, rxTime: UInt32, drop: Bool,
        previousRxColorCount: UInt16
    ) {
        self.txColor = txColor
        self.txTime = txTime
        self.rxColor = rxColor
        self.rxTime = rxTime
        self.drop = drop
        self.previousRxColorCount = previousRxColorCount
    }

    var fitsFields: Bool {
        txColor < 16 && rxColor < 16 && txTime < 1 << 28 && rxTime < 1 << 28
            && previousRxColorCount < 1 << 15
    }
}

/// A 128-bit session UUID in RFC 4122 byte order (type 6); `high` holds bytes 0...7.
public struct SessionUUID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { UInt8(truncatingIfNeeded: ($0 < 8 ? high : low) >> UInt64(56 - 8 * ($0 % 8))) }
    }

    /// The RFC 9562 version nibble.
    public var version: Int { Int(high >> 12 & 0xF) }

    /// "f81d4fae-7dec-11d0-a765-00a0c91e6bf6".
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for i in 0..<16 {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            let byte = UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> (56 - 8 * UInt64(i % 8)))
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Modify request TLV head (type 28, spec §5.3): F and D flags, 2 reserved bits, a 12-bit
/// sequence number. Semantics are unknown (spec O12); the word is kept exactly as received.
public struct ModifyRequest: Hashable, Sendable {
    public var rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public init(f: Bool, d: Bool, sequence: UInt16) {
        rawValue = (f ? 0x8000 : 0) | (d ? 0x4000 : 0) | (sequence & 0x0FFF)
    }

    public var f: Bool { rawValue & 0x8000 != 0 }
    public var d: Bool { rawValue & 0x4000 != 0 }
    public var reserved: UInt16 { (rawValue & 0x3000) >> 12 }
    public var sequence: UInt16 { rawValue & 0x0FFF }
}

/// Multicast group context (type 50): family(1) flags(1) source(A) group(A) protocol(1).
public struct MulticastGroup: Hashable, Sendable {
    public var flags: UInt8
    public var source: IPAddress
    public var group: IPAddress
    public var proto: UInt8

    public init(flags: UInt8, source: IPAddress, group: IPAddress, proto: UInt8) {
        self.flags = flags
        self.source = source
        self.group = group
        self.proto = proto
    }
}

/// SVR control message code (type 24, spec §9.3). Unknown codes are kept (spec O11: ignore).
public struct SVRControlCode: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unknown = Self(rawValue: 0)
    public static let keepAlive = Self(rawValue: 1)
    public static let enableMetadata = Self(rawValue: 2)
    public static let disableMetadata = Self(rawValue: 3)
    public static let deleteSession = Self(rawValue: 6)
    public static let healthCheckStateExists = Self(rawValue: 8)
}

/// Session health check (type 46 with a 1-byte value, spec §9.4).
public struct HealthCheck: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let request = Self(rawValue: 1)
    public static let requestAfterTimeout = Self(rawValue: 2)
}

/// Which section of a block a TLV sits in (spec §4.3).
public enum MetadataSection: Hashable, Sendable {
    /// Never encrypted.
    case header
    /// May be encrypted with the peer's metadata key.
    case payload
}

/// A byte range inside the buffer a block was decoded from (offsets from the start of that
/// buffer, i.e. the L4 payload). Used for names and opaque values so decoding does not copy;
/// the accessors read the bytes from the same buffer, which must still hold them.
public struct MetadataSlice: Hashable, Sendable {
    public var offset: Int
    public var count: Int

    public init(offset: Int, count: Int) {
        self.offset = offset
        self.count = count
    }

    public var range: Range<Int> { offset..<(offset + count) }

    /// The bytes as a String (allocates for more than 15 bytes).
    public func string(in buffer: UnsafeRawBufferPointer) -> String {
        precondition(range.upperBound <= buffer.count, "slice outside the buffer it came from")
        return MetadataMemory.string(buffer, range)
    }

    /// A copy of the bytes.
    public func bytes(in buffer: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(range.upperBound <= buffer.count, "slice outside the buffer it came from")
        return MetadataMemory.bytes(buffer, range)
    }

    /// Compares with `string`'s UTF-8 without allocating (e.g. a configured tenant name).
    public func equals(_ string: String, in buffer: UnsafeRawBufferPointer) -> Bool {
        precondition(range.upperBound <= buffer.count, "slice outside the buffer it came from")
        return MetadataMemory.equalsUTF8(buffer, range, string)
    }
}
