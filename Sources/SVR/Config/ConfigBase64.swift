// Strict standard base64 (RFC 4648 §4, with padding) for the 32-byte keys in config files.
// Strict means: length a multiple of 4, only the standard alphabet, `=` only as final
// padding, and unused trailing bits zero, so every key has exactly one spelling.

enum ConfigBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var chunk = UInt32(bytes[i]) << 16
            if n > 1 { chunk |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { chunk |= UInt32(bytes[i + 2]) }
            for j in 0..<4 {
                out.append(j <= n ? alphabet[Int(chunk >> (18 - 6 * UInt32(j)) & 0x3F)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The decoded bytes, or nil if `text` is not strict base64.
    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let isLast = i + 4 == chars.count
            var chunk: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") {
                    // Padding only in the last group, only in its last two places, and contiguous.
                    guard isLast, j >= 2 else { return nil }
                    pad += 1
                    chunk <<= 6
                    continue
                }
                guard pad == 0, let v = value(of: c) else { return nil }
                chunk = chunk << 6 | UInt32(v)
            }
            out.append(UInt8(chunk >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(chunk >> 8 & 0xFF)) } else if chunk & 0xFFFF != 0 { return nil }
            if pad < 1 { out.append(UInt8(chunk & 0xFF)) } else if chunk & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }

    private static func value(of c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
