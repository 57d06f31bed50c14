import SVR

/// Helpers shared by the session, classifier and port tests.
enum SessionTestKit {
    /// SplitMix64: a seeded generator so failures reproduce.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func ip(_ s: String) -> IPAddress { IPAddress(s)! }
    static func prefix(_ s: String) -> IPPrefix { IPPrefix(s)! }

    static func tuple(_ src: String, _ sp: UInt16, _ dst: String, _ dp: UInt16, _ proto: UInt8) -> FiveTuple {
        FiveTuple(source: ip(src), destination: ip(dst), sourcePort: sp, destinationPort: dp, proto: proto)
    }

    static let second: UInt64 = 1_000_000_000
}
