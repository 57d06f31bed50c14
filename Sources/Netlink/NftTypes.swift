// Small value types of the nftables layer: families, addresses, prefixes, hooks. They are
// the Netlink module's own (it must not depend on SVR); svrd converts at the boundary.

/// The address family of an nftables table.
public enum NftFamily: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case inet, ip, ip6, netdev

    /// The NFPROTO_* value (nfgenmsg.nfgen_family).
    var nfproto: UInt16 {
        switch self {
        case .inet: 1
        case .ip: 2
        case .ip6: 10
        case .netdev: 5
        }
    }

    init?(nfproto: UInt8) {
        guard let f = Self.allCases.first(where: { $0.nfproto == UInt16(nfproto) }) else { return nil }
        self = f
    }

    public var description: String { rawValue }
}

/// An IPv4 or IPv6 address, stored in network byte order.
public struct NftAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network byte order.
    public let bytes: [UInt8]

    /// An IPv4 address from its four octets, e.g. `NftAddress(10, 0, 0, 1)`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) { bytes = [a, b, c, d] }

    /// From 4 or 16 network-order bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text ("10.0.0.1", "2001:db8::1").
    public init?(_ text: String) {
        guard let raw = IPText.parse(text) else { return nil }
        bytes = raw
    }

    public var isIPv4: Bool { bytes.count == 4 }
    /// Address length in bits (32 or 128).
    public var bitCount: Int { bytes.count * 8 }

    public var description: String { IPText.format(bytes) }
}

/// An address prefix such as 10.0.0.0/8. Host bits are cleared on creation.
public struct NftPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: NftAddress
    public let length: Int

    /// nil when `length` is out of range for the address family.
    public init?(_ address: NftAddress, length: Int) {
        guard length >= 0, length <= address.bitCount else { return nil }
        var b = address.bytes
        for i in b.indices {
            let bitsHere = max(0, min(8, length - i * 8))
            b[i] &= bitsHere == 0 ? 0 : ~UInt8(0) << (8 - bitsHere)
        }
        self.address = NftAddress(bytes: b)!
        self.length = length
    }

    /// Parses "10.0.0.0/8" or "2001:db8::/32"; an address without "/len" is a host prefix.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let a = NftAddress(String(parts[0])) else { return nil }
        if parts.count == 1 {
            self.init(a, length: a.bitCount)
        } else {
            guard let l = Int(parts[1]) else { return nil }
            self.init(a, length: l)
        }
    }

    /// The last address inside the prefix.
    public var last: NftAddress {
        var b = address.bytes
        for i in b.indices {
            let bitsHere = max(0, min(8, length - i * 8))
            b[i] |= bitsHere == 8 ? 0 : ~UInt8(0) >> bitsHere
        }
        return NftAddress(bytes: b)!
    }

    /// The netmask bytes (e.g. ff ff 00 00 for /16).
    var maskBytes: [UInt8] {
        (0..<address.bytes.count).map { i in
            let bitsHere = max(0, min(8, length - i * 8))
            return bitsHere == 0 ? 0 : ~UInt8(0) << (8 - bitsHere)
        }
    }

    public var description: String { "\(address)/\(length)" }
}

/// Chain types (`type filter|nat|route`).
public enum NftChainType: String, Sendable, Hashable {
    case filter, nat, route
}

/// Netfilter hooks. `ingress` needs a device (netdev, or inet since Linux 5.10); `egress`
/// is netdev only; the others are the ip/ip6/inet hooks.
public enum NftHook: String, Sendable, Hashable {
    case prerouting, input, forward, output, postrouting, ingress, egress

    /// NF_INET_* or NF_NETDEV_* for `family`; nil when the family has no such hook.
    func number(in family: NftFamily) -> UInt32? {
        switch (self, family) {
        case (.ingress, .netdev): 0
        case (.egress, .netdev): 1
        case (_, .netdev), (.egress, _): nil
        case (.prerouting, _): 0
        case (.input, _): 1
        case (.forward, _): 2
        case (.output, _): 3
        case (.postrouting, _): 4
        case (.ingress, .inet): 5
        case (.ingress, _): nil
        }
    }
}

/// A base chain's default verdict.
public enum NftPolicy: String, Sendable, Hashable {
    case accept, drop
}

/// Layer-4 protocols for `meta l4proto`.
public enum NftL4Protocol: Hashable, Sendable {
    case tcp, udp, icmp, icmpv6
    case other(UInt8)

    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .icmp: 1
        case .icmpv6: 58
        case .other(let n): n
        }
    }
}

/// Connection-tracking states for `ct state` (a match succeeds if any listed state holds).
public struct NftCtState: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Bits of NF_CT_STATE_BIT(ip_conntrack_info) as nft uses them.
    public static let invalid = NftCtState(rawValue: 1)
    public static let established = NftCtState(rawValue: 2)
    public static let related = NftCtState(rawValue: 4)
    public static let new = NftCtState(rawValue: 8)
    public static let untracked = NftCtState(rawValue: 64)
}
