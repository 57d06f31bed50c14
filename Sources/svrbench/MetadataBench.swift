// svrbench metadata [ITERATIONS]: nanoseconds per encode and per decode of spec §12 TV1's forward
// metadata block (security ID header TLV; context, UUID, tenant, service, router, security
// policy and pathway payload TLVs: 108 bytes), single thread, synchronous loops timed with
// clock_gettime(CLOCK_MONOTONIC). Results go to docs/perf/metadata.md.

import Glibc
import SVR

enum MetadataBench {
    /// TV1's session state, as the ingress pipeline holds it.
    struct Session {
        var securityID: UInt32 = 1
        var context = FiveTuple(
            source: .v4(IPv4Address(10, 1, 1, 10)), destination: .v4(IPv4Address(172, 16, 2, 20)),
            sourcePort: 40000, destinationPort: 53, proto: IPProtocolNumber.udp)
        var uuid = SessionUUID(high: 0xF81D_4FAE_7DEC_11D0, low: 0xA765_00A0_C91E_6BF6)
        var tenant = "blue"
        var service = "corp-dns"
        var router = "branch1"
        var policy = "peer-sec"
        var pathway = "wan0"
    }

    static func run(_ args: [String]) {
        let iterations = args.first.flatMap { Int($0) } ?? 2_000_000
        let rounds = 7
        let session = Session()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
        defer { buffer.deallocate() }

        // One encode to check the block and to have bytes to decode.
        let length: Int
        do {
            length = try encode(session, into: buffer)
        } catch {
            print("metadata: encode failed: \(error)")
            exit(1)
        }
        let block = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[..<length])
        guard length == 108, let d = try? MetadataDecoder.decode(block), d.knownCount == 8,
            d.tenant?.equals("blue", in: block) == true
        else {
            print("metadata: TV1 block does not round-trip (length \(length))")
            exit(1)
        }

        var sink = 0
        var encodeNs = [Double]()
        var decodeNs = [Double]()
        var encodeCPU = [Double]()
        var decodeCPU = [Double]()
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
        defer { out.deallocate() }
        for _ in 0..<rounds {
            var t0 = now()
            var c0 = now(CLOCK_THREAD_CPUTIME_ID)
            for _ in 0..<iterations {
                sink &+= (try? encode(session, into: out)) ?? -1
            }
            encodeNs.append(Double(now() - t0) / Double(iterations))
            encodeCPU.append(Double(now(CLOCK_THREAD_CPUTIME_ID) - c0) / Double(iterations))

            t0 = now()
            c0 = now(CLOCK_THREAD_CPUTIME_ID)
            for _ in 0..<iterations {
                sink &+= decodeOnce(block)
            }
            decodeNs.append(Double(now() - t0) / Double(iterations))
            decodeCPU.append(Double(now(CLOCK_THREAD_CPUTIME_ID) - c0) / Double(iterations))
        }
        func fmt(_ v: Double) -> String { String(Int((v * 10).rounded())).withDecimal }
        func line(_ what: String, _ values: [Double]) {
            let v = values.sorted()
            print("  \(what)  best \(fmt(v[0]))  median \(fmt(v[rounds / 2]))  worst \(fmt(v[rounds - 1]))")
        }
        print("metadata TV1 forward block: \(length) bytes, 8 TLVs, \(iterations) iterations x \(rounds) rounds")
        print("ns/op, wall clock (CLOCK_MONOTONIC):")
        line("encode", encodeNs)
        line("decode", decodeNs)
        print("ns/op, on-CPU (CLOCK_THREAD_CPUTIME_ID; excludes time other processes had the core):")
        line("encode", encodeCPU)
        line("decode", decodeCPU)
        print("  (checksum \(sink))")
    }

    /// The sender's per-packet work: TLVs from session state into a packet buffer.
    @inline(never)
    static func encode(_ s: Session, into buffer: UnsafeMutableRawBufferPointer) throws(MetadataError) -> Int {
        var w = try MetadataWriter(into: buffer)
        try w.appendHeader(.securityID(s.securityID))
        try w.appendPayload(.forwardContext(s.context))
        try w.appendPayload(.sessionUUID(s.uuid))
        try w.appendPayload(.tenant(s.tenant))
        try w.appendPayload(.service(s.service))
        try w.appendPayload(.sourceRouter(s.router))
        try w.appendPayload(.securityPolicy(s.policy))
        try w.appendPayload(.peerPathway(s.pathway))
        return try w.finish()
    }

    /// The receiver's per-packet work: header, TLV walk, typed values (names stay slices).
    @inline(never)
    static func decodeOnce(_ block: UnsafeRawBufferPointer) -> Int {
        guard let d = try? MetadataDecoder.decode(block) else { return -1 }
        return d.knownCount + Int(d.securityID ?? 0) + Int(d.forwardContext?.sourcePort ?? 0)
            + (d.tenant?.count ?? 0) + (d.peerPathway?.offset ?? 0) + d.originalPayloadOffset
    }

    static func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Int {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
}

extension String {
    /// "1234" (tenths) -> "123.4".
    fileprivate var withDecimal: String { count < 2 ? "0." + self : String(dropLast()) + "." + String(last!) }
}
