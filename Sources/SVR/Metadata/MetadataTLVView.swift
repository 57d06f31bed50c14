// Decoding of one TLV value into a typed view (spec §5). Fixed-size values are decoded into
// value types; names and opaque bytes stay in the packet as `MetadataSlice`s, so nothing here
// allocates. All length checks for every known type live in `parse`.

/// One decoded TLV. Names, key material and other variable bytes are slices of the buffer the
/// block came from; `MetadataTLV(_:in:)` turns a view into owned values.
public enum MetadataTLVView: Hashable, Sendable {
    case fragment(FragmentInfo)
    /// Type 2 (IPv4) or 3 (IPv6).
    case forwardContext(FiveTuple)
    /// Type 4 (IPv4) or 5 (IPv6).
    case reverseContext(FiveTuple)
    case sessionUUID(SessionUUID)
    case tenant(MetadataSlice)
    case globalInterfaceID(UInt32)
    case service(MetadataSlice)
    case sessionEncrypted
    case tcpSyn
    case sessionCount(UInt64)
    case sourceRouter(MetadataSlice)
    case securityPolicy(MetadataSlice)
    case securityID(UInt32)
    case destinationRouter(MetadataSlice)
    case disableForwardMetadata
    case peerPathway(MetadataSlice)
    /// Type 20 (IPv4) or 21 (IPv6).
    case icmpErrorLocation(IPAddress)
    case control(SVRControlCode)
    case sourceNATAddress(IPv4Address)
    case pathMetrics(PathMetrics)
    /// The 16-bit head and any further bytes (meaning unknown, spec O12).
    case modifyRequest(ModifyRequest, extra: MetadataSlice)
    case applicationName(MetadataSlice)
    case remainingSessionTime(UInt32)
    /// Type 46 with a 1-byte value.
    case healthCheck(HealthCheck)
    /// Type 46 with a longer value: svrd's per-session key material (spec O2).
    case sessionKey(MetadataSlice)
    case multicastGroup(MulticastGroup)
    /// Type 51: `count` names; the slice covers the whole value (count word included).
    case multicastEgressList(count: Int, MetadataSlice)
    /// A type the codec does not know, skipped by length.
    case unknown(type: UInt16, value: MetadataSlice)

    /// Decodes the value of a TLV of type `type` whose value occupies `value` in `buffer`.
    /// `value` must lie inside `buffer` (the walker guarantees it).
    static func parse(
        type rawType: UInt16, value: MetadataSlice, in b: UnsafeRawBufferPointer
    ) throws(MetadataError) -> MetadataTLVView {
        let type = MetadataTLVType(rawType)
        let o = value.offset
        let n = value.count

        func expect(_ length: Int) throws(MetadataError) {
            guard n == length else { throw .wrongLength(type: type, length: n) }
        }
        func name() throws(MetadataError) -> MetadataSlice {
            guard n > 0 else { throw .emptyName(type) }
            guard n <= 255 else { throw .nameTooLong(type: type, length: n) }
            guard MetadataMemory.isValidUTF8(b, value.range) else { throw .invalidUTF8(type) }
            return value
        }

        switch rawType {
        case 1:
            try expect(10)
            return .fragment(
                FragmentInfo(
                    flagsAndOffset: MetadataMemory.u16(b, o + 6),
                    extendedID: MetadataMemory.u32(b, o), originalID: MetadataMemory.u16(b, o + 4),
                    largest: MetadataMemory.u16(b, o + 8)))
        case 2, 4:
            try expect(13)
            let t = FiveTuple(
                source: .v4(MetadataMemory.ipv4(b, o)), destination: .v4(MetadataMemory.ipv4(b, o + 4)),
                sourcePort: MetadataMemory.u16(b, o + 8), destinationPort: MetadataMemory.u16(b, o + 10),
                proto: MetadataMemory.u8(b, o + 12))
            return rawType == 2 ? .forwardContext(t) : .reverseContext(t)
        case 3, 5:
            try expect(37)
            let t = FiveTuple(
                source: .v6(MetadataMemory.ipv6(b, o)), destination: .v6(MetadataMemory.ipv6(b, o + 16)),
                sourcePort: MetadataMemory.u16(b, o + 32), destinationPort: MetadataMemory.u16(b, o + 34),
                proto: MetadataMemory.u8(b, o + 36))
            return rawType == 3 ? .forwardContext(t) : .reverseContext(t)
        case 6:
            try expect(16)
            return .sessionUUID(SessionUUID(high: MetadataMemory.u64(b, o), low: MetadataMemory.u64(b, o + 8)))
        case 7: return .tenant(try name())
        case 8:
            try expect(4)
            return .globalInterfaceID(MetadataMemory.u32(b, o))
        case 10: return .service(try name())
        case 11:
            try expect(0)
            return .sessionEncrypted
        case 12:
            try expect(0)
            return .tcpSyn
        case 13:
            try expect(8)
            return .sessionCount(MetadataMemory.u64(b, o))
        case 14: return .sourceRouter(try name())
        case 15: return .securityPolicy(try name())
        case 16:
            try expect(4)
            return .securityID(MetadataMemory.u32(b, o))
        case 17: return .destinationRouter(try name())
        case 18:
            try expect(0)
            return .disableForwardMetadata
        case 19: return .peerPathway(try name())
        case 20:
            try expect(4)
            return .icmpErrorLocation(.v4(MetadataMemory.ipv4(b, o)))
        case 21:
            try expect(16)
            return .icmpErrorLocation(.v6(MetadataMemory.ipv6(b, o)))
        case 24:
            try expect(1)
            return .control(SVRControlCode(rawValue: MetadataMemory.u8(b, o)))
        case 25:
            try expect(4)
            return .sourceNATAddress(MetadataMemory.ipv4(b, o))
        case 26:
            try expect(10)
            let tx = MetadataMemory.u32(b, o)
            let rx = MetadataMemory.u32(b, o + 4)
            let tail = MetadataMemory.u16(b, o + 8)
            return .pathMetrics(
                PathMetrics(
                    txColor: UInt8(tx >> 28), txTime: tx & 0x0FFF_FFFF, rxColor: UInt8(rx >> 28),
                    rxTime: rx & 0x0FFF_FFFF, drop: tail & 0x8000 != 0,
                    previousRxColorCount: tail & 0x7FFF))
        case 28:
            guard n >= 2 else { throw .wrongLength(type: type, length: n) }
            return .modifyRequest(
                ModifyRequest(rawValue: MetadataMemory.u16(b, o)),
                extra: MetadataSlice(offset: o + 2, count: n - 2))
        case 35: return .applicationName(try name())
        case 42:
            try expect(4)
            return .remainingSessionTime(MetadataMemory.u32(b, o))
        case 46:
            switch n {
            case 0: throw .wrongLength(type: type, length: 0)
            case 1: return .healthCheck(HealthCheck(rawValue: MetadataMemory.u8(b, o)))
            default: return .sessionKey(value)
            }
        case 50:
            guard n >= 1 else { throw .wrongLength(type: type, length: n) }
            let family = MetadataMemory.u8(b, o)
            guard family == 4 || family == 6 else { throw .invalidValue(type) }
            let a = family == 4 ? 4 : 16
            try expect(3 + 2 * a)
            let src: IPAddress = a == 4 ? .v4(MetadataMemory.ipv4(b, o + 2)) : .v6(MetadataMemory.ipv6(b, o + 2))
            let grp: IPAddress =
                a == 4 ? .v4(MetadataMemory.ipv4(b, o + 2 + a)) : .v6(MetadataMemory.ipv6(b, o + 2 + a))
            return .multicastGroup(
                MulticastGroup(
                    flags: MetadataMemory.u8(b, o + 1), source: src, group: grp,
                    proto: MetadataMemory.u8(b, o + 2 + 2 * a)))
        case 51:
            guard n >= 2 else { throw .wrongLength(type: type, length: n) }
            let count = Int(MetadataMemory.u16(b, o))
            let end = o + n
            var p = o + 2
            for _ in 0..<count {
                guard p < end else { throw .invalidValue(type) }
                let len = Int(MetadataMemory.u8(b, p))
                guard len > 0 else { throw .emptyName(type) }
                guard p + 1 + len <= end else { throw .invalidValue(type) }
                guard MetadataMemory.isValidUTF8(b, (p + 1)..<(p + 1 + len)) else { throw .invalidUTF8(type) }
                p += 1 + len
            }
            guard p == end else { throw .invalidValue(type) }
            return .multicastEgressList(count: count, value)
        default:
            return .unknown(type: rawType, value: value)
        }
    }

    /// The names of a multicast egress list value (type 51) decoded by `parse`.
    static func egressNames(_ value: MetadataSlice, in b: UnsafeRawBufferPointer) -> [String] {
        let count = Int(MetadataMemory.u16(b, value.offset))
        var names = [String]()
        names.reserveCapacity(count)
        var p = value.offset + 2
        for _ in 0..<count {
            let len = Int(MetadataMemory.u8(b, p))
            names.append(MetadataMemory.string(b, (p + 1)..<(p + 1 + len)))
            p += 1 + len
        }
        return names
    }
}
