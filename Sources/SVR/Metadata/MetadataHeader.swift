// The 12-byte SVR metadata base header (spec §4.2), cookie detection, the receiver's header
// checks (spec §4.6) and the false-positive header both ways (spec §4.5).
//
//  0       8        9.5      10       12
//  | cookie | ver|hl (12 bits) | pl (16) | header TLVs ... | payload TLVs ... | original payload

/// The base header of a metadata block: its two section lengths.
///
/// Offsets are relative to the first cookie byte (the first byte of the L4 payload). Header TLVs
/// occupy `headerTLVRange`, payload TLVs `payloadTLVRange`, and the original L4 payload starts at
/// `originalPayloadOffset`.
public struct MetadataHeader: Hashable, Sendable {
    /// The cookie's 8 bytes `4C 48 DB C6 DD F6 67 0C` read as a big-endian integer.
    public static let cookie: UInt64 = 0x4C48_DBC6_DDF6_670C
    /// Size of the base header (cookie, version, header length, payload length).
    public static let baseLength = 12
    /// Largest Header Length (12-bit field).
    public static let maxHeaderLength = 0xFFF
    /// Largest Payload Length (16-bit field).
    public static let maxPayloadLength = 0xFFFF
    /// The only version defined (spec O19).
    public static let version: UInt8 = 1
    /// The false-positive marker: no TLVs, Header Length 12, Payload Length 0.
    public static let falsePositive = MetadataHeader(headerLength: 12, payloadLength: 0)

    /// Bytes from the first cookie byte to the end of the header TLVs (>= 12).
    public var headerLength: Int
    /// Bytes of the payload-TLV section as transmitted (possibly encrypted).
    public var payloadLength: Int

    public init(headerLength: Int, payloadLength: Int) {
        self.headerLength = headerLength
        self.payloadLength = payloadLength
    }

    /// Where the header TLVs are.
    public var headerTLVRange: Range<Int> { Self.baseLength..<headerLength }
    /// Where the payload TLVs are, as transmitted (the range a crypto layer decrypts in place).
    public var payloadTLVRange: Range<Int> { headerLength..<(headerLength + payloadLength) }
    /// Header Length + Payload Length: the bytes a receiver strips.
    public var blockLength: Int { headerLength + payloadLength }
    /// Where the original L4 payload starts.
    public var originalPayloadOffset: Int { headerLength + payloadLength }
    /// Whether this is a false-positive marker (spec §4.5): strip it, forward the rest unchanged.
    public var isFalsePositive: Bool { headerLength == Self.baseLength && payloadLength == 0 }

    /// Whether `bytes` begins with the 8 cookie bytes.
    @inline(__always)
    public static func startsWithCookie(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 8 && MetadataMemory.u64(bytes, 0) == cookie
    }

    /// Sender side (spec §4.5): whether a packet that carries no metadata must get a
    /// false-positive header because its L4 payload, as it will be sent, starts with the cookie.
    @inline(__always)
    public static func needsFalsePositiveHeader(payload: UnsafeRawBufferPointer) -> Bool {
        startsWithCookie(payload)
    }

    /// Step 1 of receive: parses and checks the base header at the start of an L4 payload.
    ///
    /// - Parameters:
    ///   - l4Payload: the bytes after the L4 header, including any HMAC trailer.
    ///   - trailerLength: bytes at the end that are not part of the SVR payload (the HMAC trailer
    ///     when HMAC is expected on this peer path), excluded from the length check.
    /// - Returns: nil when the payload does not start with the cookie (no metadata). A header
    ///   with `isFalsePositive` is a valid result.
    /// - Throws: `truncatedHeader` (cookie but < 12 bytes), `unsupportedVersion`,
    ///   `headerLengthTooSmall`, `blockExceedsBuffer`.
    public static func parse(
        _ l4Payload: UnsafeRawBufferPointer, trailerLength: Int = 0
    ) throws(MetadataError) -> MetadataHeader? {
        guard startsWithCookie(l4Payload) else { return nil }
        guard l4Payload.count >= baseLength else {
            throw .truncatedHeader(available: l4Payload.count)
        }
        let word = MetadataMemory.u16(l4Payload, 8)
        let version = UInt8(word >> 12)
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let hl = Int(word & 0x0FFF)
        let pl = Int(MetadataMemory.u16(l4Payload, 10))
        guard hl >= baseLength else { throw .headerLengthTooSmall(hl) }
        let available = l4Payload.count - max(0, trailerLength)
        guard hl + pl <= available else {
            throw .blockExceedsBuffer(blockLength: hl + pl, available: available)
        }
        return MetadataHeader(headerLength: hl, payloadLength: pl)
    }

    /// Writes the 12-byte base header (cookie, version 1, both lengths) at the start of `buffer`.
    /// - Throws: `bufferTooSmall`, `headerLengthTooSmall`, `headerSectionTooLong`,
    ///   `payloadSectionTooLong`.
    public func write(into buffer: UnsafeMutableRawBufferPointer) throws(MetadataError) {
        guard buffer.count >= Self.baseLength else {
            throw .bufferTooSmall(needed: Self.baseLength, available: buffer.count)
        }
        guard headerLength >= Self.baseLength else { throw .headerLengthTooSmall(headerLength) }
        guard headerLength <= Self.maxHeaderLength else { throw .headerSectionTooLong(headerLength) }
        guard (0...Self.maxPayloadLength).contains(payloadLength) else {
            throw .payloadSectionTooLong(payloadLength)
        }
        let w = MetadataByteWriter(buffer: buffer, position: 0)
        w.patch64(Self.cookie, at: 0)
        w.patch16(UInt16(Self.version) << 12 | UInt16(headerLength), at: 8)
        w.patch16(UInt16(payloadLength), at: 10)
    }

    /// Rewrites the Payload Length field of a block already written at the start of `buffer`,
    /// e.g. after the payload-TLV section was encrypted in place (ciphertext || IV is longer).
    public static func setPayloadLength(
        _ length: Int, in buffer: UnsafeMutableRawBufferPointer
    ) throws(MetadataError) {
        guard buffer.count >= baseLength else {
            throw .bufferTooSmall(needed: baseLength, available: buffer.count)
        }
        guard (0...maxPayloadLength).contains(length) else { throw .payloadSectionTooLong(length) }
        MetadataByteWriter(buffer: buffer, position: 0).patch16(UInt16(length), at: 10)
    }

    /// Sender side (spec §4.5): writes the 12 false-positive bytes `4C48DBC6DDF6670C 100C 0000`
    /// at the start of `buffer` (the packet layer makes room for them before the payload).
    /// - Returns: the number of bytes written (12).
    @discardableResult
    public static func writeFalsePositive(
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(MetadataError) -> Int {
        try falsePositive.write(into: buffer)
        return baseLength
    }
}
