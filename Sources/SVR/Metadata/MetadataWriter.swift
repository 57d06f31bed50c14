// Building a metadata block into a caller-provided buffer (spec §4.2-§4.4).
//
// Send flow: MetadataWriter(into:) -> appendHeader(...)* -> appendPayload(...)* -> finish()
// -> (optionally encrypt payloadTLVRange in place and MetadataHeader.setPayloadLength) -> the
// packet layer places the block right after the L4 header.

/// Writes header TLVs, then payload TLVs, into a buffer and fills in the base header.
///
/// The writer borrows `buffer`; it must stay valid until `finish()`. Nothing is allocated. A
/// failed append writes nothing and leaves the writer as it was.
public struct MetadataWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    private var w: MetadataByteWriter
    /// End of the header section once the first payload TLV was written.
    private var headerEnd: Int?

    /// Starts a block at the start of `buffer` (the 12-byte base header is written by `finish`).
    /// - Throws: `bufferTooSmall` if `buffer` cannot hold the base header.
    public init(into buffer: UnsafeMutableRawBufferPointer) throws(MetadataError) {
        guard buffer.count >= MetadataHeader.baseLength else {
            throw .bufferTooSmall(needed: MetadataHeader.baseLength, available: buffer.count)
        }
        self.buffer = buffer
        w = MetadataByteWriter(buffer: buffer, position: MetadataHeader.baseLength)
    }

    /// Header Length so far.
    public var headerLength: Int { headerEnd ?? w.position }
    /// Payload Length so far.
    public var payloadLength: Int { headerEnd.map { w.position - $0 } ?? 0 }

    /// Appends a TLV to the header section (never encrypted).
    /// - Throws: `headerTLVAfterPayload`, `headerSectionTooLong`, `bufferTooSmall`, or a value
    ///   error from `MetadataTLV.valueLength()`.
    public mutating func appendHeader(_ tlv: MetadataTLV) throws(MetadataError) {
        guard headerEnd == nil else { throw .headerTLVAfterPayload }
        let n = try tlv.valueLength()
        let end = w.position + 4 + n
        guard end <= MetadataHeader.maxHeaderLength else { throw .headerSectionTooLong(end) }
        try reserve(4 + n)
        tlv.write(valueLength: n, to: &w)
    }

    /// Appends a TLV to the payload section (the part a metadata key may encrypt).
    /// - Throws: `payloadSectionTooLong`, `bufferTooSmall`, or a value error.
    public mutating func appendPayload(_ tlv: MetadataTLV) throws(MetadataError) {
        let start = headerEnd ?? w.position
        let n = try tlv.valueLength()
        let length = w.position + 4 + n - start
        guard length <= MetadataHeader.maxPayloadLength else { throw .payloadSectionTooLong(length) }
        try reserve(4 + n)
        headerEnd = start
        tlv.write(valueLength: n, to: &w)
    }

    /// Appends to the given section.
    public mutating func append(_ tlv: MetadataTLV, to section: MetadataSection) throws(MetadataError) {
        switch section {
        case .header: try appendHeader(tlv)
        case .payload: try appendPayload(tlv)
        }
    }

    /// Writes the base header with both lengths.
    /// - Returns: the block length (Header Length + Payload Length), i.e. bytes used in `buffer`.
    public mutating func finish() throws(MetadataError) -> Int {
        let header = MetadataHeader(headerLength: headerLength, payloadLength: payloadLength)
        try header.write(into: buffer)
        return header.blockLength
    }

    private func reserve(_ n: Int) throws(MetadataError) {
        guard w.position + n <= buffer.count else {
            throw .bufferTooSmall(needed: w.position + n, available: buffer.count)
        }
    }

    /// Encodes a whole block in one call.
    /// - Returns: the number of bytes written at the start of `buffer`.
    public static func encode(
        header: some Sequence<MetadataTLV>, payload: some Sequence<MetadataTLV>,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(MetadataError) -> Int {
        var writer = try MetadataWriter(into: buffer)
        for t in header { try writer.appendHeader(t) }
        for t in payload { try writer.appendPayload(t) }
        return try writer.finish()
    }

    /// Bytes a block with these TLVs needs.
    public static func encodedLength(
        header: some Sequence<MetadataTLV>, payload: some Sequence<MetadataTLV>
    ) throws(MetadataError) -> Int {
        var n = MetadataHeader.baseLength
        for t in header { n += 4 + (try t.valueLength()) }
        for t in payload { n += 4 + (try t.valueLength()) }
        return n
    }
}
