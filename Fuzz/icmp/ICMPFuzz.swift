// libFuzzer target for the ICMP error parser and builder (Fuzz/run.sh icmp SECONDS).
//
// Compiled into one module with the packet sources, `ICMPError.swift` and `EngineWire.swift`
// (see Fuzz/run.sh). Each input is read two ways, both exactly sized so AddressSanitizer sees
// any read past the end:
//   1. as a received ICMP error (`ICMPErrorQuote.parse`, what `lanICMP` runs on LAN packets):
//      an accepted quote must lie inside the input and be of a non-error, unfragmented packet;
//   2. as an offending packet (`ICMPErrorBuilder.mayAnswer` and `write`, into a separate buffer
//      and in place over the input's own bytes): a built error is at most 576 bytes, its IP
//      and ICMP checksums verify, it parses back as an ICMP error when its quote holds 8 bytes
//      after the quoted header, and both ways of building give the same bytes.

import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func icmpFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    checkParse(input)
    checkBuild(input)
    return 0
}

func checkParse(_ input: UnsafeRawBufferPointer) {
    let q: ICMPErrorQuote
    do { q = try ICMPErrorQuote.parse(input) } catch { return }
    precondition(q.quoteOffset >= 28 && q.quoteOffset + q.quoteLength <= input.count, "quote outside the input")
    precondition(q.quotedHeaderLength >= 20 && q.quoteLength >= q.quotedHeaderLength + 8, "short quote accepted")
    precondition(ICMPv4.isError(type: q.type), "a query accepted as an error")
}

func checkBuild(_ input: UnsafeRawBufferPointer) {
    _ = ICMPErrorBuilder.mayAnswer(input)
    let type = input.count > 0 ? input[input.count - 1] % 13 : 3
    let quoteData = input.count > 1 ? Int(input[input.count - 2]) * 4 : 8
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 600, alignment: 8)
    defer { out.deallocate() }
    let n = ICMPErrorBuilder.write(into: out, type: type, code: 4, nextHopMTU: 1280, source: 0x0A00_0001,
                                   destination: 0x0A00_0002, offending: input, quoteData: quoteData)
    // In place: the input copied 28 bytes into an exactly sized buffer, the error written from
    // its start (overlapping the input).
    let inPlace = UnsafeMutableRawBufferPointer.allocate(byteCount: 28 + input.count, alignment: 8)
    defer { inPlace.deallocate() }
    if input.count > 0 { UnsafeMutableRawBufferPointer(rebasing: inPlace[28...]).copyMemory(from: input) }
    let m = ICMPErrorBuilder.write(into: inPlace, type: type, code: 4, nextHopMTU: 1280, source: 0x0A00_0001,
                                   destination: 0x0A00_0002, offending: UnsafeRawBufferPointer(rebasing: inPlace[28...]),
                                   quoteData: quoteData)
    guard let n else {
        precondition(m == nil, "in place built what the roomy buffer could not")
        return
    }
    precondition(n <= ICMPErrorBuilder.maxLength && n >= ICMPErrorBuilder.minLength - 8, "length \(n)")
    let built = UnsafeRawBufferPointer(start: out.baseAddress, count: n)
    precondition(InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: built[0..<20])) == 0, "IP checksum")
    precondition(InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: built[20..<n])) == 0, "ICMP checksum")
    if let m, m == n {
        precondition(memcmp(out.baseAddress!, inPlace.baseAddress!, n) == 0, "in place differs")
    }
    let qihl = Int(built[28] & 15) * 4
    if ICMPv4.isError(type: type), n >= 28 + qihl + 8 {
        do {
            let q = try ICMPErrorQuote.parse(built)
            precondition(q.type == type && q.quoteOffset == 28, "parsed back differently")
        } catch {
            // An error about an error or about a later fragment is refused by the parser.
            precondition(error != .truncated && error != .notAnError, "built error does not parse: \(error)")
        }
    }
}
