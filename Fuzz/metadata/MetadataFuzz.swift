// libFuzzer target for the metadata decoder (Fuzz/run.sh metadata SECONDS).
//
// Compiled into one module together with the SVR metadata sources (see Fuzz/run.sh), so it calls
// the codec directly. Besides "no crash, no out-of-bounds read" (AddressSanitizer), it checks two
// properties on every input:
//   1. the per-packet decoder (DecodedMetadata) and the owned decoder (MetadataTLVList) accept
//      and reject exactly the same inputs, with the same error;
//   2. an accepted block re-encodes byte for byte from its decoded TLVs.

@_cdecl("LLVMFuzzerTestOneInput")
public func metadataFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    if MetadataHeader.startsWithCookie(input) {
        checkBlock(input)
    } else {
        // Most mutations lose the cookie; also try the input behind one so the TLV walk gets
        // exercised. The copy is exactly sized so ASan sees any read past its end.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 8, alignment: 1)
        defer { copy.deallocate() }
        copy.storeBytes(of: MetadataHeader.cookie.bigEndian, toByteOffset: 0, as: UInt64.self)
        if size > 0 { UnsafeMutableRawBufferPointer(rebasing: copy[8...]).copyMemory(from: input) }
        checkBlock(UnsafeRawBufferPointer(copy))
    }
    return 0
}

func checkBlock(_ input: UnsafeRawBufferPointer) {
    // A 16-byte HMAC trailer only shrinks what is available.
    _ = try? MetadataHeader.parse(input, trailerLength: 16)
    let header: MetadataHeader
    do {
        guard let h = try MetadataHeader.parse(input) else { return }
        header = h
    } catch {
        return
    }
    let fast = Result { () throws(MetadataError) in try MetadataDecoder.decode(input, header: header) }
    let list = Result { () throws(MetadataError) in try MetadataDecoder.decodeList(input, header: header) }
    switch (fast, list) {
    case (.success(let d), .success(let l)):
        precondition(d.knownCount + d.unknownCount == l.headerTLVs.count + l.payloadTLVs.count)
        let n = header.blockLength
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 1)
        defer { out.deallocate() }
        let written: Int
        do {
            written = try MetadataWriter.encode(header: l.headerTLVs, payload: l.payloadTLVs, into: out)
        } catch {
            preconditionFailure("decoded block does not re-encode: \(error)")
        }
        precondition(written == n, "re-encoded length \(written) != \(n)")
        precondition(UnsafeRawBufferPointer(out).elementsEqual(UnsafeRawBufferPointer(rebasing: input[0..<n])),
                     "re-encoded bytes differ")
        if let t = d.tenant { _ = t.equals("blue", in: input) }
        _ = d.multicastEgressNames(in: input)
    case (.failure(let a), .failure(let b)):
        precondition(a == b, "decoders disagree: \(a) vs \(b)")
    default:
        preconditionFailure("decoders disagree on acceptance: \(fast) vs \(list)")
    }
    // As after in-place decryption: a shorter clear payload section must walk safely too.
    _ = try? MetadataDecoder.decode(input, header: header, payloadTLVLength: header.payloadLength / 2)
}
