// Receive side of the metadata codec (spec §4.6).
//
// Flow: MetadataHeader.parse(l4Payload, trailerLength:)          step 1: cookie, version, lengths
//       -> verify HMAC, decrypt header.payloadTLVRange in place     (crypto layer, optional)
//       -> MetadataDecoder.decode(l4Payload, header:, payloadTLVLength:)   step 2: walk the TLVs
//       -> strip header.blockLength bytes (packet layer)
// Each section's walk must end exactly at the section end. Known TLVs are accepted in either
// section; unknown ones are skipped by length and counted. Nothing here allocates.

/// Walks the TLVs of a block: the header section, then the payload section.
///
/// Rejects a second TLV of the same kind (the IPv4 and IPv6 forms of a TLV count as one kind;
/// a session health check and a session key, both type 46, are different kinds).
public struct MetadataTLVWalker {
    private let buffer: UnsafeRawBufferPointer
    private var position: Int
    private var end: Int
    private let payloadEnd: Int
    private var seen: UInt64 = 0
    /// The section of the TLV most recently returned by `next()`.
    public private(set) var section: MetadataSection = .header

    /// - Parameters:
    ///   - block: the buffer the header was parsed from (the L4 payload).
    ///   - header: from `MetadataHeader.parse`.
    ///   - payloadTLVLength: bytes of clear payload TLVs at `header.headerLength` after in-place
    ///     decryption; nil when the section was not encrypted (`header.payloadLength`).
    /// - Throws: `blockExceedsBuffer`, `headerLengthTooSmall`, `invalidPayloadSectionLength`.
    public init(
        _ block: UnsafeRawBufferPointer, header: MetadataHeader, payloadTLVLength: Int? = nil
    ) throws(MetadataError) {
        guard header.headerLength >= MetadataHeader.baseLength else {
            throw .headerLengthTooSmall(header.headerLength)
        }
        guard header.payloadLength >= 0, header.blockLength <= block.count else {
            throw .blockExceedsBuffer(blockLength: header.blockLength, available: block.count)
        }
        let pl = payloadTLVLength ?? header.payloadLength
        guard (0...header.payloadLength).contains(pl) else { throw .invalidPayloadSectionLength(pl) }
        buffer = block
        position = MetadataHeader.baseLength
        end = header.headerLength
        payloadEnd = header.headerLength + pl
    }

    /// The next TLV, or nil after the last one of the payload section.
    public mutating func next() throws(MetadataError) -> MetadataTLVView? {
        if position >= end {
            guard section == .header else { return nil }
            section = .payload
            end = payloadEnd
            if position >= end { return nil }
        }
        guard end - position >= 4 else { throw .truncatedTLVHeader(offset: position) }
        let rawType = MetadataMemory.u16(buffer, position)
        let length = Int(MetadataMemory.u16(buffer, position + 2))
        let valueStart = position + 4
        guard length <= end - valueStart else {
            throw .tlvOverrunsSection(type: MetadataTLVType(rawType), offset: position, length: length)
        }
        position = valueStart + length
        let type = MetadataTLVType(rawType)
        if type.isKnown {
            let bit: UInt64 = rawType == 46 && length > 1 ? 1 << 47 : type.duplicateBit
            guard seen & bit == 0 else { throw .duplicateTLV(type) }
            seen |= bit
        }
        return try MetadataTLVView.parse(
            type: rawType, value: MetadataSlice(offset: valueStart, count: length), in: buffer)
    }
}

/// Everything a metadata block says, decoded without copying: fixed values as value types,
/// names and opaque bytes as slices of the buffer it was decoded from (which must still hold
/// them when a slice is read). One optional field per TLV kind; flags are Bools.
public struct DecodedMetadata: Hashable, Sendable {
    /// The base header (both lengths as transmitted).
    public var header: MetadataHeader
    /// The payload-TLV bytes that were walked (shorter than `header.payloadTLVRange` after
    /// in-place decryption).
    public var payloadTLVRange: Range<Int>

    public var fragment: FragmentInfo?
    public var forwardContext: FiveTuple?
    public var reverseContext: FiveTuple?
    public var sessionUUID: SessionUUID?
    public var tenant: MetadataSlice?
    public var globalInterfaceID: UInt32?
    public var service: MetadataSlice?
    public var sessionEncrypted = false
    public var tcpSyn = false
    public var sessionCount: UInt64?
    public var sourceRouter: MetadataSlice?
    public var securityPolicy: MetadataSlice?
    public var securityID: UInt32?
    public var destinationRouter: MetadataSlice?
    public var disableForwardMetadata = false
    public var peerPathway: MetadataSlice?
    public var icmpErrorLocation: IPAddress?
    public var control: SVRControlCode?
    public var sourceNATAddress: IPv4Address?
    public var pathMetrics: PathMetrics?
    public var modifyRequest: ModifyRequest?
    /// Bytes after the modify request's first 16 bits (empty slice when there are none).
    public var modifyRequestExtra: MetadataSlice?
    public var applicationName: MetadataSlice?
    public var remainingSessionTime: UInt32?
    public var healthCheck: HealthCheck?
    public var sessionKey: MetadataSlice?
    public var multicastGroup: MulticastGroup?
    /// The whole type-51 value; `multicastEgressNames(in:)` lists the names.
    public var multicastEgressList: MetadataSlice?

    /// Known TLVs decoded.
    public var knownCount = 0
    /// Unknown TLVs skipped.
    public var unknownCount = 0
    /// Type of the first unknown TLV (for a log line).
    public var firstUnknownType: UInt16?

    public init(header: MetadataHeader, payloadTLVRange: Range<Int>) {
        self.header = header
        self.payloadTLVRange = payloadTLVRange
    }

    /// Where the original L4 payload starts (bytes to strip).
    public var originalPayloadOffset: Int { header.originalPayloadOffset }
    /// A false-positive marker: no TLVs, strip 12 bytes (spec §4.5).
    public var isFalsePositive: Bool { header.isFalsePositive }

    /// The names of the multicast egress list, if any (allocates).
    public func multicastEgressNames(in buffer: UnsafeRawBufferPointer) -> [String] {
        guard let s = multicastEgressList else { return [] }
        precondition(s.range.upperBound <= buffer.count, "slice outside the buffer it came from")
        return MetadataTLVView.egressNames(s, in: buffer)
    }

    /// Records one TLV (the walker has already rejected duplicates).
    mutating func record(_ v: MetadataTLVView) {
        knownCount += 1
        switch v {
        case .fragment(let x): fragment = x
        case .forwardContext(let x): forwardContext = x
        case .reverseContext(let x): reverseContext = x
        case .sessionUUID(let x): sessionUUID = x
        case .tenant(let x): tenant = x
        case .globalInterfaceID(let x): globalInterfaceID = x
        case .service(let x): service = x
        case .sessionEncrypted: sessionEncrypted = true
        case .tcpSyn: tcpSyn = true
        case .sessionCount(let x): sessionCount = x
        case .sourceRouter(let x): sourceRouter = x
        case .securityPolicy(let x): securityPolicy = x
        case .securityID(let x): securityID = x
        case .destinationRouter(let x): destinationRouter = x
        case .disableForwardMetadata: disableForwardMetadata = true
        case .peerPathway(let x): peerPathway = x
        case .icmpErrorLocation(let x): icmpErrorLocation = x
        case .control(let x): control = x
        case .sourceNATAddress(let x): sourceNATAddress = x
        case .pathMetrics(let x): pathMetrics = x
        case .modifyRequest(let x, let extra):
            modifyRequest = x
            modifyRequestExtra = extra
        case .applicationName(let x): applicationName = x
        case .remainingSessionTime(let x): remainingSessionTime = x
        case .healthCheck(let x): healthCheck = x
        case .sessionKey(let x): sessionKey = x
        case .multicastGroup(let x): multicastGroup = x
        case .multicastEgressList(_, let x): multicastEgressList = x
        case .unknown(let t, _):
            knownCount -= 1
            unknownCount += 1
            if firstUnknownType == nil { firstUnknownType = t }
        }
    }
}

/// All TLVs of a block, in wire order, with owned values (control plane, tests, tools).
public struct MetadataTLVList: Hashable, Sendable {
    public var header: MetadataHeader
    public var headerTLVs: [MetadataTLV]
    public var payloadTLVs: [MetadataTLV]

    public init(header: MetadataHeader, headerTLVs: [MetadataTLV], payloadTLVs: [MetadataTLV]) {
        self.header = header
        self.headerTLVs = headerTLVs
        self.payloadTLVs = payloadTLVs
    }
}

/// Entry points of the receive side.
public enum MetadataDecoder {
    /// Step 2: walks both TLV sections of a block whose header was parsed by
    /// `MetadataHeader.parse` (and whose payload section may have been decrypted in place).
    ///
    /// - Parameters:
    ///   - block: the L4 payload the header was parsed from.
    ///   - payloadTLVLength: clear payload-TLV bytes at `header.headerLength` after in-place
    ///     decryption; nil if the section was sent in the clear.
    public static func decode(
        _ block: UnsafeRawBufferPointer, header: MetadataHeader, payloadTLVLength: Int? = nil
    ) throws(MetadataError) -> DecodedMetadata {
        var walker = try MetadataTLVWalker(block, header: header, payloadTLVLength: payloadTLVLength)
        let pl = payloadTLVLength ?? header.payloadLength
        var out = DecodedMetadata(
            header: header, payloadTLVRange: header.headerLength..<(header.headerLength + pl))
        while let v = try walker.next() { out.record(v) }
        return out
    }

    /// Steps 1 and 2 for a block sent in the clear: nil when the payload does not start with
    /// the cookie.
    public static func decode(
        _ l4Payload: UnsafeRawBufferPointer, trailerLength: Int = 0
    ) throws(MetadataError) -> DecodedMetadata? {
        guard let header = try MetadataHeader.parse(l4Payload, trailerLength: trailerLength) else {
            return nil
        }
        return try decode(l4Payload, header: header)
    }

    /// Step 2 with owned values in wire order (allocates; not for the per-packet path).
    public static func decodeList(
        _ block: UnsafeRawBufferPointer, header: MetadataHeader, payloadTLVLength: Int? = nil
    ) throws(MetadataError) -> MetadataTLVList {
        var walker = try MetadataTLVWalker(block, header: header, payloadTLVLength: payloadTLVLength)
        var list = MetadataTLVList(header: header, headerTLVs: [], payloadTLVs: [])
        while let v = try walker.next() {
            switch walker.section {
            case .header: list.headerTLVs.append(MetadataTLV(v, in: block))
            case .payload: list.payloadTLVs.append(MetadataTLV(v, in: block))
            }
        }
        return list
    }
}
