// Helpers for the metadata codec tests: encoding into arrays, decoding from arrays, a seeded
// random generator, and the "decoded block re-encodes exactly" oracle.

import SVR
import Testing

/// `withUnsafeBytes` with a typed-throwing body (the stdlib's is untyped `rethrows`).
func withBytes<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(MetadataError) -> T) throws(MetadataError) -> T {
    try bytes.withUnsafeBytes { b in Result { () throws(MetadataError) in try body(b) } }.get()
}

/// `withUnsafeMutableBytes` with a typed-throwing body.
func withMutableBytes<T>(
    _ bytes: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(MetadataError) -> T
) throws(MetadataError) -> T {
    try bytes.withUnsafeMutableBytes { b in Result { () throws(MetadataError) in try body(b) } }.get()
}

/// Encodes a block into a fresh array (buffer sized generously, result trimmed).
func encodeBlock(header: [MetadataTLV], payload: [MetadataTLV]) throws(MetadataError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 70_000)
    let n = try withMutableBytes(&out) { buf throws(MetadataError) in
        try MetadataWriter.encode(header: header, payload: payload, into: buf)
    }
    return Array(out[..<n])
}

/// Parses and walks `bytes` into owned TLVs (nil when there is no cookie).
func decodeList(_ bytes: [UInt8], trailerLength: Int = 0) throws(MetadataError) -> MetadataTLVList? {
    try withBytes(bytes) { buf throws(MetadataError) in
        guard let h = try MetadataHeader.parse(buf, trailerLength: trailerLength) else { return nil }
        return try MetadataDecoder.decodeList(buf, header: h)
    }
}

/// The per-packet decode of `bytes` (nil when there is no cookie).
func decodeFast(_ bytes: [UInt8], trailerLength: Int = 0) throws(MetadataError) -> DecodedMetadata? {
    try withBytes(bytes) { buf throws(MetadataError) in
        try MetadataDecoder.decode(buf, trailerLength: trailerLength)
    }
}

/// The error `body` throws, or nil.
func metadataError<T>(_ body: () throws(MetadataError) -> T) -> MetadataError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Decodes `bytes` both ways; both must agree, and an accepted block must re-encode to exactly
/// its own bytes. Returns whether the block was accepted.
@discardableResult
func checkDecodeConsistency(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    let fast = Result { () throws(MetadataError) in try decodeFast(bytes) }
    let list = Result { () throws(MetadataError) in try decodeList(bytes) }
    switch (fast, list) {
    case (.success(let d?), .success(let l?)):
        #expect(d.knownCount + d.unknownCount == l.headerTLVs.count + l.payloadTLVs.count,
                sourceLocation: sourceLocation)
        let again = Result { () throws(MetadataError) in try encodeBlock(header: l.headerTLVs, payload: l.payloadTLVs) }
        #expect((try? again.get()) == Array(bytes[..<d.originalPayloadOffset]), sourceLocation: sourceLocation)
        return true
    case (.success(nil), .success(nil)):
        return false
    case (.failure(let a), .failure(let b)):
        #expect(a == b, sourceLocation: sourceLocation)
        return false
    default:
        Issue.record("decoders disagree: \(fast) vs \(list)", sourceLocation: sourceLocation)
        return false
    }
}

/// The owned TLV of the same kind as `tlv` that `d` holds, read from `buffer`: lets a test
/// compare the per-packet decode with expected owned values.
func field(of d: DecodedMetadata, like tlv: MetadataTLV, in buffer: [UInt8]) -> MetadataTLV? {
    buffer.withUnsafeBytes { b -> MetadataTLV? in
        switch tlv {
        case .fragment: d.fragment.map { .fragment($0) }
        case .forwardContext: d.forwardContext.map { .forwardContext($0) }
        case .reverseContext: d.reverseContext.map { .reverseContext($0) }
        case .sessionUUID: d.sessionUUID.map { .sessionUUID($0) }
        case .tenant: d.tenant.map { .tenant($0.string(in: b)) }
        case .globalInterfaceID: d.globalInterfaceID.map { .globalInterfaceID($0) }
        case .service: d.service.map { .service($0.string(in: b)) }
        case .sessionEncrypted: d.sessionEncrypted ? .sessionEncrypted : nil
        case .tcpSyn: d.tcpSyn ? .tcpSyn : nil
        case .sessionCount: d.sessionCount.map { .sessionCount($0) }
        case .sourceRouter: d.sourceRouter.map { .sourceRouter($0.string(in: b)) }
        case .securityPolicy: d.securityPolicy.map { .securityPolicy($0.string(in: b)) }
        case .securityID: d.securityID.map { .securityID($0) }
        case .destinationRouter: d.destinationRouter.map { .destinationRouter($0.string(in: b)) }
        case .disableForwardMetadata: d.disableForwardMetadata ? .disableForwardMetadata : nil
        case .peerPathway: d.peerPathway.map { .peerPathway($0.string(in: b)) }
        case .icmpErrorLocation: d.icmpErrorLocation.map { .icmpErrorLocation($0) }
        case .control: d.control.map { .control($0) }
        case .sourceNATAddress: d.sourceNATAddress.map { .sourceNATAddress($0) }
        case .pathMetrics: d.pathMetrics.map { .pathMetrics($0) }
        case .modifyRequest:
            d.modifyRequest.map { .modifyRequest($0, extra: d.modifyRequestExtra?.bytes(in: b) ?? []) }
        case .applicationName: d.applicationName.map { .applicationName($0.string(in: b)) }
        case .remainingSessionTime: d.remainingSessionTime.map { .remainingSessionTime($0) }
        case .healthCheck: d.healthCheck.map { .healthCheck($0) }
        case .sessionKey: d.sessionKey.map { .sessionKey($0.bytes(in: b)) }
        case .multicastGroup: d.multicastGroup.map { .multicastGroup($0) }
        case .multicastEgressList: d.multicastEgressList.map { _ in .multicastEgressList(d.multicastEgressNames(in: b)) }
        case .unknown: nil
        }
    }
}


func v4(_ s: String) -> IPAddress { IPAddress(s)! }
