// IP addresses and prefixes as the rtnetlink layer speaks them. The Netlink module does not
// depend on SVR, so it has its own small value types; their shapes match SVR's IPv4Address
// (a host-order UInt32) and IPv6Address (two big-endian halves) so that converting is a
// field copy.

/// The address family of a route, rule or address.
public enum AddressFamily: Sendable, Hashable, CustomStringConvertible {
    case ipv4
    case ipv6

    /// AF_INET / AF_INET6 as the one-byte family field of rtnetlink headers.
    var kernelValue: UInt8 { self == .ipv4 ? RTNL.afInet : RTNL.afInet6 }

    init?(kernelValue: UInt8) {
        switch kernelValue {
        case RTNL.afInet: self = .ipv4
        case RTNL.afInet6: self = .ipv6
        default: return nil
        }
    }

    /// Address length in bits.
    public var bitLength: Int { self == .ipv4 ? 32 : 128 }

    public var description: String { self == .ipv4 ? "inet" : "inet6" }
}

/// An IPv4 or IPv6 address.
public enum NetlinkAddress: Sendable, Hashable, CustomStringConvertible {
    /// `a.b.c.d` as `a << 24 | b << 16 | c << 8 | d`.
    case v4(UInt32)
    /// The first and last eight bytes, each read big-endian.
    case v6(high: UInt64, low: UInt64)

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text.
    public init?(_ text: String) {
        guard let raw = IPText.parse(text) else { return nil }
        self.init(bytes: raw)
    }

    /// From network-order bytes: 4 for IPv4, 16 for IPv6.
    public init?<C: Collection<UInt8>>(bytes: C) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high: high, low: low)
        default: return nil
        }
    }

    /// The unspecified address of `family` (0.0.0.0 or ::).
    public static func any(_ family: AddressFamily) -> NetlinkAddress {
        family == .ipv4 ? .v4(0) : .v6(high: 0, low: 0)
    }

    public var family: AddressFamily {
        if case .v4 = self { .ipv4 } else { .ipv6 }
    }

    /// Network-order bytes (4 or 16), as netlink attributes carry them.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v): return withUnsafeBytes(of: v.bigEndian, Array.init)
        case .v6(let high, let low):
            return withUnsafeBytes(of: high.bigEndian, Array.init) + withUnsafeBytes(of: low.bigEndian, Array.init)
        }
    }

    public var description: String { IPText.format(bytes) }

    /// The address with every bit after the first `length` cleared.
    public func masked(to length: Int) -> NetlinkAddress {
        switch self {
        case .v4(let v):
            return .v4(length <= 0 ? 0 : length >= 32 ? v : v & ~(UInt32.max >> UInt32(length)))
        case .v6(let high, let low):
            func mask(_ half: UInt64, _ bits: Int) -> UInt64 {
                bits <= 0 ? 0 : bits >= 64 ? half : half & ~(UInt64.max >> UInt64(bits))
            }
            return .v6(high: mask(high, length), low: mask(low, length - 64))
        }
    }
}

/// An address with a prefix length: a route destination, a rule selector, or an interface
/// address (where the host bits are kept).
public struct NetlinkPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: NetlinkAddress
    public let length: UInt8

    /// Fails when `length` exceeds the family's bit length. Host bits are kept as given.
    public init?(_ address: NetlinkAddress, length: Int) {
        guard length >= 0, length <= address.family.bitLength else { return nil }
        self.address = address
        self.length = UInt8(length)
    }

    /// Parses `addr/len`, or a bare address (a host prefix: /32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = NetlinkAddress(String(parts[0])) else { return nil }
        if parts.count == 1 {
            self.init(address, length: address.family.bitLength)
        } else {
            guard let length = Int(parts[1]) else { return nil }
            self.init(address, length: length)
        }
    }

    /// The default route of `family` (0.0.0.0/0 or ::/0).
    public static func defaultRoute(_ family: AddressFamily) -> NetlinkPrefix {
        NetlinkPrefix(.any(family), length: 0)!
    }

    public var family: AddressFamily { address.family }

    /// The same prefix with the host bits cleared (how the kernel stores route destinations).
    public var network: NetlinkPrefix { NetlinkPrefix(address.masked(to: Int(length)), length: Int(length))! }

    public var description: String { "\(address)/\(length)" }
}
