// Owned TLV values (spec §5) and their encoding. This is what a sender builds metadata from and
// what the control plane and tests compare against; the per-packet receive path uses
// `MetadataTLVView` / `DecodedMetadata` instead, which do not copy names.

/// One TLV with owned values.
public enum MetadataTLV: Hashable, Sendable {
    case fragment(FragmentInfo)
    /// Encoded as type 2 (IPv4) or 3 (IPv6); both addresses must be of one family.
    case forwardContext(FiveTuple)
    /// Encoded as type 4 (IPv4) or 5 (IPv6).
    case reverseContext(FiveTuple)
    case sessionUUID(SessionUUID)
    case tenant(String)
    case globalInterfaceID(UInt32)
    case service(String)
    case sessionEncrypted
    case tcpSyn
    case sessionCount(UInt64)
    case sourceRouter(String)
    case securityPolicy(String)
    case securityID(UInt32)
    case destinationRouter(String)
    case disableForwardMetadata
    case peerPathway(String)
    /// Encoded as type 20 (IPv4) or 21 (IPv6).
    case icmpErrorLocation(IPAddress)
    case control(SVRControlCode)
    case sourceNATAddress(IPv4Address)
    case pathMetrics(PathMetrics)
    case modifyRequest(ModifyRequest, extra: [UInt8])
    case applicationName(String)
    case remainingSessionTime(UInt32)
    /// Type 46, 1 byte.
    case healthCheck(HealthCheck)
    /// Type 46, at least 2 bytes (a 1-byte value would read back as a health check).
    case sessionKey([UInt8])
    case multicastGroup(MulticastGroup)
    case multicastEgressList([String])
    /// A type the codec does not know. Decoding reports these; a sender should never originate
    /// them (spec §5), and encoding refuses known type numbers here.
    case unknown(type: UInt16, value: [UInt8])

    /// Copies a decoded view out of the buffer it was decoded from.
    public init(_ view: MetadataTLVView, in buffer: UnsafeRawBufferPointer) {
        switch view {
        case .fragment(let v): self = .fragment(v)
        case .forwardContext(let v): self = .forwardContext(v)
        case .reverseContext(let v): self = .reverseContext(v)
        case .sessionUUID(let v): self = .sessionUUID(v)
        case .tenant(let s): self = .tenant(s.string(in: buffer))
        case .globalInterfaceID(let v): self = .globalInterfaceID(v)
        case .service(let s): self = .service(s.string(in: buffer))
        case .sessionEncrypted: self = .sessionEncrypted
        case .tcpSyn: self = .tcpSyn
        case .sessionCount(let v): self = .sessionCount(v)
        case .sourceRouter(let s): self = .sourceRouter(s.string(in: buffer))
        case .securityPolicy(let s): self = .securityPolicy(s.string(in: buffer))
        case .securityID(let v): self = .securityID(v)
        case .destinationRouter(let s): self = .destinationRouter(s.string(in: buffer))
        case .disableForwardMetadata: self = .disableForwardMetadata
        case .peerPathway(let s): self = .peerPathway(s.string(in: buffer))
        case .icmpErrorLocation(let v): self = .icmpErrorLocation(v)
        case .control(let v): self = .control(v)
        case .sourceNATAddress(let v): self = .sourceNATAddress(v)
        case .pathMetrics(let v): self = .pathMetrics(v)
        case .modifyRequest(let v, let extra): self = .modifyRequest(v, extra: extra.bytes(in: buffer))
        case .applicationName(let s): self = .applicationName(s.string(in: buffer))
        case .remainingSessionTime(let v): self = .remainingSessionTime(v)
        case .healthCheck(let v): self = .healthCheck(v)
        case .sessionKey(let s): self = .sessionKey(s.bytes(in: buffer))
        case .multicastGroup(let v): self = .multicastGroup(v)
        case .multicastEgressList(_, let s):
            self = .multicastEgressList(MetadataTLVView.egressNames(s, in: buffer))
        case .unknown(let t, let s): self = .unknown(type: t, value: s.bytes(in: buffer))
        }
    }

    /// The type number this value is encoded with.
    public var type: MetadataTLVType {
        switch self {
        case .fragment: .fragment
        case .forwardContext(let t): t.source.isIPv4 ? .forwardContextV4 : .forwardContextV6
        case .reverseContext(let t): t.source.isIPv4 ? .reverseContextV4 : .reverseContextV6
        case .sessionUUID: .sessionUUID
        case .tenant: .tenant
        case .globalInterfaceID: .globalInterfaceID
        case .service: .service
        case .sessionEncrypted: .sessionEncrypted
        case .tcpSyn: .tcpSyn
        case .sessionCount: .sessionCount
        case .sourceRouter: .sourceRouter
        case .securityPolicy: .securityPolicy
        case .securityID: .securityID
        case .destinationRouter: .destinationRouter
        case .disableForwardMetadata: .disableForwardMetadata
        case .peerPathway: .peerPathway
        case .icmpErrorLocation(let a): a.isIPv4 ? .icmpErrorLocationV4 : .icmpErrorLocationV6
        case .control: .control
        case .sourceNATAddress: .sourceNATAddress
        case .pathMetrics: .pathMetrics
        case .modifyRequest: .modifyRequest
        case .applicationName: .applicationName
        case .remainingSessionTime: .remainingSessionTime
        case .healthCheck, .sessionKey: .healthCheckOrSessionKey
        case .multicastGroup: .multicastGroup
        case .multicastEgressList: .multicastEgressList
        case .unknown(let t, _): MetadataTLVType(t)
        }
    }

    /// Checks the value and returns its encoded length (without the 4-byte type/length).
    /// - Throws: `nameTooLong`, `emptyName`, `fieldOutOfRange`, `mixedAddressFamilies`,
    ///   `wrongLength` (1-byte session key), `valueTooLong`, `knownTypeAsUnknown`.
    public func valueLength() throws(MetadataError) -> Int {
        let type = self.type
        func name(_ s: String) throws(MetadataError) -> Int {
            let n = s.utf8.count
            guard n > 0 else { throw .emptyName(type) }
            guard n <= 255 else { throw .nameTooLong(type: type, length: n) }
            return n
        }
        func context(_ t: FiveTuple) throws(MetadataError) -> Int {
            guard t.source.isIPv4 == t.destination.isIPv4 else { throw .mixedAddressFamilies(type) }
            return t.source.isIPv4 ? 13 : 37
        }
        func opaque(_ n: Int) throws(MetadataError) -> Int {
            guard n <= 0xFFFF else { throw .valueTooLong(type: type, length: n) }
            return n
        }
        switch self {
        case .fragment(let f):
            guard f.offset < 0x2000 else { throw .fieldOutOfRange(type) }
            return 10
        case .forwardContext(let t), .reverseContext(let t): return try context(t)
        case .sessionUUID: return 16
        case .tenant(let s), .service(let s), .sourceRouter(let s), .securityPolicy(let s),
            .destinationRouter(let s), .peerPathway(let s), .applicationName(let s):
            return try name(s)
        case .globalInterfaceID, .securityID, .sourceNATAddress, .remainingSessionTime: return 4
        case .sessionEncrypted, .tcpSyn, .disableForwardMetadata: return 0
        case .sessionCount: return 8
        case .icmpErrorLocation(let a): return a.isIPv4 ? 4 : 16
        case .control, .healthCheck: return 1
        case .pathMetrics(let m):
            guard m.fitsFields else { throw .fieldOutOfRange(type) }
            return 10
        case .modifyRequest(_, let extra): return try opaque(2 + extra.count)
        case .sessionKey(let k):
            guard k.count >= 2 else { throw .wrongLength(type: type, length: k.count) }
            return try opaque(k.count)
        case .multicastGroup(let g):
            guard g.source.isIPv4 == g.group.isIPv4 else { throw .mixedAddressFamilies(type) }
            return g.source.isIPv4 ? 11 : 35
        case .multicastEgressList(let names):
            guard names.count <= 0xFFFF else { throw .valueTooLong(type: type, length: names.count) }
            var total = 2
            for n in names { total += 1 + (try name(n)) }
            return try opaque(total)
        case .unknown(let t, let v):
            guard !MetadataTLVType(t).isKnown else { throw .knownTypeAsUnknown(type) }
            return try opaque(v.count)
        }
    }

    /// Writes type, length and value. `valueLength` must have been checked and the space reserved.
    func write(valueLength: Int, to w: inout MetadataByteWriter) {
        w.u16(type.rawValue)
        w.u16(UInt16(valueLength))
        switch self {
        case .fragment(let f):
            w.u32(f.extendedID)
            w.u16(f.originalID)
            w.u16(f.flagsAndOffset)
            w.u16(f.largestSeenFragment)
        case .forwardContext(let t), .reverseContext(let t):
            w.address(t.source)
            w.address(t.destination)
            w.u16(t.sourcePort)
            w.u16(t.destinationPort)
            w.u8(t.proto)
        case .sessionUUID(let u):
            w.u64(u.high)
            w.u64(u.low)
        case .tenant(let s), .service(let s), .sourceRouter(let s), .securityPolicy(let s),
            .destinationRouter(let s), .peerPathway(let s), .applicationName(let s):
            w.utf8(s)
        case .globalInterfaceID(let v), .securityID(let v), .remainingSessionTime(let v): w.u32(v)
        case .sourceNATAddress(let a): w.u32(a.value)
        case .sessionEncrypted, .tcpSyn, .disableForwardMetadata: break
        case .sessionCount(let v): w.u64(v)
        case .icmpErrorLocation(let a): w.address(a)
        case .control(let c): w.u8(c.rawValue)
        case .healthCheck(let h): w.u8(h.rawValue)
        case .pathMetrics(let m):
            w.u32(UInt32(m.txColor) << 28 | m.txTime)
            w.u32(UInt32(m.rxColor) << 28 | m.rxTime)
            w.u16((m.drop ? 0x8000 : 0) | m.previousRxColorCount)
        case .modifyRequest(let r, let extra):
            w.u16(r.rawValue)
            w.bytes(extra)
        case .sessionKey(let k): w.bytes(k)
        case .multicastGroup(let g):
            w.u8(g.source.isIPv4 ? 4 : 6)
            w.u8(g.flags)
            w.address(g.source)
            w.address(g.group)
            w.u8(g.proto)
        case .multicastEgressList(let names):
            w.u16(UInt16(names.count))
            for n in names {
                w.u8(UInt8(n.utf8.count))
                w.utf8(n)
            }
        case .unknown(_, let v): w.bytes(v)
        }
    }
}
