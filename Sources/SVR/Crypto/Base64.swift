// Standard base64 (RFC 4648 §4, alphabet A–Z a–z 0–9 + /, '=' padding) for keys on the
// command line and in configuration. Decoding is strict: no whitespace, padding required,
// and the unused low bits of the last symbol must be zero (one canonical text per value).

public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 6-bit value of each byte, or 0xFF for bytes outside the alphabet.
    private static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i < input.count {
            let rest = input.count - i
            let b0 = UInt32(input[i])
            let b1 = rest > 1 ? UInt32(input[i + 1]) : 0
            let b2 = rest > 2 ? UInt32(input[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(rest > 1 ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(rest > 2 ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of `text`, or nil unless it is canonical, padded standard base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let s = Array(text.utf8)
        guard s.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(s.count / 4 * 3)
        var i = 0
        while i < s.count {
            let last = i + 4 == s.count
            let pad = last ? (s[i + 3] == UInt8(ascii: "=") ? (s[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var v: UInt32 = 0
            for j in 0..<4 {
                let c = s[i + j]
                let d: UInt8 = j >= 4 - pad ? 0 : values[Int(c)]
                guard d != 0xFF else { return nil }  // also rejects '=' anywhere but the end
                v = v << 6 | UInt32(d)
            }
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) } else if v & 0xFFFF != 0 { return nil }
            if pad < 1 { out.append(UInt8(v & 0xFF)) } else if v & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }
}
