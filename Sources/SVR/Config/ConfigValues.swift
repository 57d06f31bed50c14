// Parsers for the string values of a config file (names, addresses, prefixes, ports, keys).
// Each either returns the value or throws a `ValueProblem` whose message completes the line
// `FILE:LINE: key.path: <message>`.

struct ValueProblem: Error {
    let kind: ConfigError.Kind
    let message: String

    init(_ kind: ConfigError.Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

enum ConfigValues {
    /// Object names: 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit (spec O20).
    static func name(_ s: String) throws(ValueProblem) -> String {
        let u = Array(s.utf8)
        guard (1...64).contains(u.count), isAlnum(u[0]),
            u.allSatisfy({ ConfigPath.isBareKeyByte($0) || $0 == UInt8(ascii: ".") })
        else {
            throw ValueProblem(.invalidValue,
                "'\(s)' is not a valid name (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)")
        }
        return s
    }

    /// Linux network device names: 1–15 bytes, no '/', ':' or whitespace, not "." or "..".
    static func deviceName(_ s: String) throws(ValueProblem) -> String {
        let u = Array(s.utf8)
        let bad: Set<UInt8> = [UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n")]
        guard (1...15).contains(u.count), s != ".", s != "..", !u.contains(where: { bad.contains($0) || $0 < 0x20 || $0 >= 0x7F })
        else {
            throw ValueProblem(.invalidValue,
                "'\(s)' is not a valid Linux device name (1-15 characters, no '/', ':' or spaces)")
        }
        return s
    }

    static func address(_ s: String) throws(ValueProblem) -> IPAddress {
        if let a = IPAddress(s) { return a }
        if s.contains("/") { throw ValueProblem(.invalidAddress, "'\(s)' is a prefix; expected a single IPv4 or IPv6 address") }
        throw ValueProblem(.invalidAddress, "'\(s)' is not an IPv4 or IPv6 address")
    }

    /// "ADDR/LEN" (or a bare address, a host prefix) with no host bits set.
    static func prefix(_ s: String) throws(ValueProblem) -> IPPrefix {
        guard let p = IPPrefix(s) else {
            throw ValueProblem(.invalidPrefix, "'\(s)' is not a valid prefix (ADDRESS/LENGTH, e.g. 10.1.0.0/16)")
        }
        let written = s.split(separator: "/", maxSplits: 1).first.map(String.init) ?? s
        if IPAddress(written) != p.address {
            throw ValueProblem(.invalidPrefix, "'\(s)' has host bits set; did you mean '\(p)'?")
        }
        return p
    }

    /// "ADDR/LEN" as configured on an interface: host bits are the point here.
    static func interfaceAddress(_ s: String) throws(ValueProblem) -> Config.InterfaceAddress {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPAddress(String(parts[0])), parts[1].utf8.allSatisfy(isDigit),
            let len = Int(parts[1]), let result = Config.InterfaceAddress(address: a, prefixLength: len)
        else {
            throw ValueProblem(.invalidPrefix, "'\(s)' is not an address with a prefix length (e.g. 10.1.0.1/24)")
        }
        return result
    }

    static func port(_ s: Substring, allowZero: Bool = false) -> UInt16? {
        guard !s.isEmpty, s.count <= 5, s.utf8.allSatisfy(isDigit), let v = Int(s), v <= 65535, allowZero || v > 0 else {
            return nil
        }
        return UInt16(v)
    }

    /// "LOW-HIGH" or a single port "P", ports 1...65535.
    static func portRange(_ s: String) throws(ValueProblem) -> Config.PortRange {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let lo = port(parts[0]), let hi = port(parts[parts.count - 1]) else {
            throw ValueProblem(.invalidPort, "'\(s)' is not a port (1-65535) or port range (LOW-HIGH)")
        }
        guard let r = Config.PortRange(lo, hi) else {
            throw ValueProblem(.invalidPort, "'\(s)' is an empty range (\(lo) > \(hi))")
        }
        return r
    }

    /// A waypoint port range: as `portRange`, within 1025...65535 (spec §3) and at least 2 ports.
    static func waypointPortRange(_ s: String) throws(ValueProblem) -> Config.PortRange {
        let r = try portRange(s)
        guard r.lower >= 1025, r.count >= 2 else {
            throw ValueProblem(.outOfRange, "'\(s)': waypoint ports must lie in 1025-65535 and span at least 2 ports")
        }
        return r
    }

    /// "ADDRESS:PORT" or "[IPV6]:PORT".
    static func endpoint(_ s: String) throws(ValueProblem) -> Config.Endpoint {
        let problem = ValueProblem(.invalidAddress, "'\(s)' is not ADDRESS:PORT (e.g. 127.0.0.1:9810 or [::1]:9810)")
        guard let colon = s.lastIndex(of: ":"), let p = port(s[s.index(after: colon)...], allowZero: false) else { throw problem }
        var host = s[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
            guard let a = IPv6Address(String(host)) else { throw problem }
            return Config.Endpoint(address: .v6(a), port: p)
        }
        guard let a = IPv4Address(String(host)) else { throw problem }
        return Config.Endpoint(address: .v4(a), port: p)
    }

    /// Strict base64 of exactly 32 bytes.
    static func key(_ s: String, what: String) throws(ValueProblem) -> [UInt8] {
        guard let bytes = Base64.decode(s) else {
            throw ValueProblem(.invalidKey, "not a valid base64 X25519 \(what) (32 bytes)")
        }
        guard bytes.count == 32 else {
            throw ValueProblem(.invalidKey, "not a valid base64 X25519 \(what) (32 bytes): it decodes to \(bytes.count) bytes")
        }
        return bytes
    }

    /// Space, tab, LF or CR (TOML whitespace and line ends).
    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) }
}
