// svrbench crypto [BYTES] [SECONDS]: single-core Gbit/s of PayloadCipher.seal / .open and of
// the §6.3 HMAC trailer, BYTES of plaintext per packet (default 1400), a synchronous loop
// run for SECONDS (default 1) of thread CPU time per line.
//
// Rates are per second of CPU time (CLOCK_THREAD_CPUTIME_ID), because that is what
// `openssl speed` reports by default (user time; `-elapsed` switches it to wall time), and
// on a shared, loaded box wall time mostly measures the other processes. The wall-clock
// rate is printed too. Compare with ../shared/bench/crypto.sh (openssl speed, 1408-byte
// blocks) in the same session, on the same core: taskset -c 0 .build/release/svrbench crypto

import Glibc
import SVR

enum CryptoBench {
    static func run(_ args: [String]) {
        let bytes = args.count > 0 ? Int(args[0]) ?? 1400 : 1400
        let seconds = args.count > 1 ? Double(args[1]) ?? 1 : 1
        print("crypto: \(bytes)-byte plaintext per packet, \(seconds) s per line, 1 thread")
        do {
            let key = try SymmetricKey.random()
            for suite in [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm] {
                let (seal, open) = try measure(suite: suite, key: key, bytes: bytes, seconds: seconds)
                report("seal \(suite)", seal, bytes)
                report("open \(suite) (+memcpy)", open, bytes)
                // As the engine does it: the session's sequence in the nonce / CBC IV, and
                // recovered on open (replay protection, docs/crypto.md).
                let (sseal, sopen) = try measure(suite: suite, key: key, bytes: bytes, seconds: seconds, sequenced: true)
                report("seal \(suite) sequenced", sseal, bytes)
                report("open \(suite) sequenced (+memcpy)", sopen, bytes)
            }
            report("hmac trailer sha256-128 time-based", try measureHMAC(key: key, bytes: bytes, seconds: seconds), bytes)
        } catch {
            print("crypto bench failed: \(error)")
            exit(1)
        }
    }

    private static func report(_ what: String, _ r: Timing, _ bytes: Int) {
        let pps = Double(r.packets) / r.cpu
        let gbps = pps * Double(bytes) * 8 / 1e9
        let wall = Double(r.packets) / r.wall * Double(bytes) * 8 / 1e9
        print("  \(what.padding(44)) \(fmt(gbps)) Gbit/s  \(fmt(1e9 / pps)) ns/pkt (CPU time)   wall: \(fmt(wall)) Gbit/s")
    }

    private static func fmt(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return "\(r)"
    }

    typealias Timing = (packets: Int, cpu: Double, wall: Double)

    static func now(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Runs `body` in batches of 256 until `seconds` of this thread's CPU time have passed.
    @inline(__always)
    static func loop(seconds: Double, _ body: () throws(CryptoError) -> Void) throws(CryptoError) -> Timing {
        let wall0 = now(CLOCK_MONOTONIC)
        let cpu0 = now(CLOCK_THREAD_CPUTIME_ID)
        var packets = 0
        var cpu = cpu0
        repeat {
            for _ in 0..<256 { try body() }
            packets += 256
            cpu = now(CLOCK_THREAD_CPUTIME_ID)
        } while cpu - cpu0 < seconds
        return (packets, cpu - cpu0, now(CLOCK_MONOTONIC) - wall0)
    }

    static func measure(suite: CipherSuite, key: SymmetricKey, bytes: Int, seconds: Double, sequenced: Bool = false) throws(CryptoError)
        -> (seal: Timing, open: Timing) {
        var sequence = GCMNonceSequence(prefix: 0x1234_5678, counter: 1 << 60)
        var got = PayloadSequence()
        var sealer = try PayloadCipher(suite: suite, key: key)
        var opener = try PayloadCipher(suite: suite, key: key)
        let cap = bytes + suite.maxOverhead
        let work = UnsafeMutableRawBufferPointer.allocate(byteCount: cap, alignment: 64)
        let master = UnsafeMutableRawBufferPointer.allocate(byteCount: cap, alignment: 64)
        defer { work.deallocate(); master.deallocate() }
        for i in 0..<cap { work[i] = UInt8(truncatingIfNeeded: i) }
        let seal = try loop(seconds: seconds) { () throws(CryptoError) in
            if sequenced {
                _ = try sealer.seal(inPlace: work, plaintextLength: bytes, nonce: &sequence)
            } else {
                _ = try sealer.seal(inPlace: work, plaintextLength: bytes)
            }
        }
        let sealed = sequenced ? try sealer.seal(inPlace: work, plaintextLength: bytes, nonce: &sequence)
            : try sealer.seal(inPlace: work, plaintextLength: bytes)
        master.copyMemory(from: UnsafeRawBufferPointer(work))
        let open = try loop(seconds: seconds) { () throws(CryptoError) in
            work.baseAddress!.copyMemory(from: master.baseAddress!, byteCount: sealed)
            if sequenced {
                _ = try opener.open(inPlace: work, sealedLength: sealed, sequence: &got)
            } else {
                _ = try opener.open(inPlace: work, sealedLength: sealed)
            }
        }
        return (seal, open)
    }

    static func measureHMAC(key: SymmetricKey, bytes: Int, seconds: Double) throws(CryptoError) -> Timing {
        var auth = try PacketAuthenticator(key: key, algorithm: .sha256_128, mode: .timeBased)
        let work = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes + 16, alignment: 64)
        defer { work.deallocate() }
        work.initializeMemory(as: UInt8.self, repeating: 0x5A)
        return try loop(seconds: seconds) { () throws(CryptoError) in
            _ = try auth.appendTrailer(work, length: bytes)
        }
    }
}
