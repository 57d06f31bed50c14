// Typed errors of the metadata codec (spec §4, §5). One case per kind of malformation, so the
// data plane can count drops by cause. Offsets are relative to the start of the buffer handed to
// the codec (the L4 payload on receive).

/// Why a metadata block could not be decoded, or a block could not be encoded.
public enum MetadataError: Error, Hashable, Sendable {
    // ---- base header (spec §4.2, §4.6) ----
    /// The payload starts with the cookie but is shorter than the 12-byte base header.
    case truncatedHeader(available: Int)
    /// The version nibble is not 1 (spec O19: drop and count).
    case unsupportedVersion(UInt8)
    /// Header Length is below the 12-byte base header.
    case headerLengthTooSmall(Int)
    /// Header Length + Payload Length runs past the bytes available (before any HMAC trailer).
    case blockExceedsBuffer(blockLength: Int, available: Int)
    /// The payload-section length given after in-place decryption is negative or larger than the
    /// section as transmitted.
    case invalidPayloadSectionLength(Int)

    // ---- TLV framing (spec §4.4) ----
    /// Fewer than 4 bytes remain in a section where a TLV's type and length should start: the
    /// walk does not end exactly at the section end.
    case truncatedTLVHeader(offset: Int)
    /// A TLV's value runs past the end of its section.
    case tlvOverrunsSection(type: MetadataTLVType, offset: Int, length: Int)
    /// A known TLV type occurs twice in one block.
    case duplicateTLV(MetadataTLVType)

    // ---- TLV values (spec §5) ----
    /// A fixed-size TLV (or the minimum of a variable one) has the wrong value length.
    case wrongLength(type: MetadataTLVType, length: Int)
    /// A name is longer than 255 bytes (spec O20).
    case nameTooLong(type: MetadataTLVType, length: Int)
    /// A name is empty.
    case emptyName(MetadataTLVType)
    /// A name is not valid UTF-8 (spec O20).
    case invalidUTF8(MetadataTLVType)
    /// The inside of a structured value is inconsistent (multicast family, egress list walk).
    case invalidValue(MetadataTLVType)

    // ---- encode only ----
    /// The output buffer cannot hold the block.
    case bufferTooSmall(needed: Int, available: Int)
    /// Header TLVs would push Header Length past 4095 (12-bit field).
    case headerSectionTooLong(Int)
    /// Payload TLVs would push Payload Length past 65535.
    case payloadSectionTooLong(Int)
    /// A value is longer than a 16-bit TLV length can express.
    case valueTooLong(type: MetadataTLVType, length: Int)
    /// A bit field does not fit its width (fragment offset, path metric colors/times/counts).
    case fieldOutOfRange(MetadataTLVType)
    /// A context or multicast TLV mixes IPv4 and IPv6 addresses.
    case mixedAddressFamilies(MetadataTLVType)
    /// An `.unknown` TLV was given a type number the codec knows (it would decode as another TLV).
    case knownTypeAsUnknown(MetadataTLVType)
    /// A header TLV was appended after the first payload TLV.
    case headerTLVAfterPayload
}
