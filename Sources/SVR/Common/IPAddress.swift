// Address value types shared by the whole SVR module: packet views, config, classifier and
// session table all speak these. Values are stored in host byte order; parsing and printing
// go through inet_pton/inet_ntop (control plane only, never per packet).

import Glibc

/// An IPv4 address, stored as a host-order `UInt32` (10.1.1.10 is 0x0A01010A).
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    @inlinable public init(_ value: UInt32) { self.value = value }
    @inlinable public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation ("192.0.2.1"); nil if it is not an IPv4 address.
    public init?(_ text: String) {
        var a = in_addr()
        guard inet_pton(AF_INET, text, &a) == 1 else { return nil }
        value = UInt32(bigEndian: a.s_addr)
    }

    public static let any = IPv4Address(0)
    public static func < (l: IPv4Address, r: IPv4Address) -> Bool { l.value < r.value }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }
}

/// An IPv6 address, stored as two host-order `UInt64` halves (`high` holds bytes 0...7).
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// Parses RFC 4291 text ("2001:db8::1"); nil if it is not an IPv6 address.
    public init?(_ text: String) {
        var a = in6_addr()
        guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
        var h: UInt64 = 0
        var l: UInt64 = 0
        withUnsafeBytes(of: &a) { raw in
            for i in 0..<8 { h = h << 8 | UInt64(raw[i]) }
            for i in 8..<16 { l = l << 8 | UInt64(raw[i]) }
        }
        high = h
        low = l
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public static let any = IPv6Address(high: 0, low: 0)
    public static func < (l: IPv6Address, r: IPv6Address) -> Bool {
        l.high != r.high ? l.high < r.high : l.low < r.low
    }

    public var description: String {
        var a = in6_addr()
        let b = bytes
        withUnsafeMutableBytes(of: &a) { raw in for i in 0..<16 { raw[i] = b[i] } }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family.
    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var isIPv4: Bool { if case .v4 = self { true } else { false } }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }
}

/// An address prefix ("10.0.0.0/8", "2001:db8::/32"). The address is stored masked.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    /// Creates a prefix; host bits of `address` are cleared. Nil if `length` is too long.
    public init?(_ address: IPAddress, length: Int) {
        switch address {
        case .v4(let a):
            guard (0...32).contains(length) else { return nil }
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - length)
            self.address = .v4(IPv4Address(a.value & mask))
        case .v6(let a):
            guard (0...128).contains(length) else { return nil }
            let hm: UInt64 = length == 0 ? 0 : (length >= 64 ? ~0 : ~UInt64(0) << (64 - length))
            let lm: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << (128 - length))
            self.address = .v6(IPv6Address(high: a.high & hm, low: a.low & lm))
        }
        self.length = UInt8(length)
    }

    /// Parses "ADDRESS/LEN"; a bare address is a host prefix (/32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let addr = IPAddress(String(parts[0])) else { return nil }
        let maxLen = addr.isIPv4 ? 32 : 128
        var len = maxLen
        if parts.count == 2 {
            guard let l = Int(parts[1]), parts[1].allSatisfy(\.isNumber) else { return nil }
            len = l
        }
        self.init(addr, length: len)
    }

    /// Whether `other` lies inside this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        guard let p = IPPrefix(other, length: Int(length)) else { return false }
        return p.address == address
    }

    /// Whether the two prefixes share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard address.isIPv4 == other.address.isIPv4 else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    public var description: String { "\(address)/\(length)" }
}

/// IP protocol numbers used by SVR.
public enum IPProtocolNumber {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
}

/// A session's 5-tuple as seen on one side (for ICMP echo: srcPort = identifier, dstPort = 0,
/// spec O8).
public struct FiveTuple: Hashable, Sendable, CustomStringConvertible {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var proto: UInt8

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16, proto: UInt8) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.proto = proto
    }

    /// The same flow seen from the other end.
    public var reversed: FiveTuple {
        FiveTuple(source: destination, destination: source, sourcePort: destinationPort, destinationPort: sourcePort, proto: proto)
    }

    public var description: String {
        func ep(_ a: IPAddress, _ p: UInt16) -> String { a.isIPv4 ? "\(a):\(p)" : "[\(a)]:\(p)" }
        return "\(ep(source, sourcePort)) -> \(ep(destination, destinationPort)) proto \(proto)"
    }
}
