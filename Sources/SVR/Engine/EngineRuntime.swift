// The immutable runtime form of a `Config`, built once by `SVRRouter.init`: name tables,
// the classifier, service routes, and per-peer crypto and paths.

/// Why an engine could not be built from a configuration.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration cannot be run by this engine (e.g. a classifier conflict).
    case invalidConfig(String)
    /// Key derivation or cipher setup failed.
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid configuration: \(why)"
        case .crypto(let e): "crypto: \(e)"
        }
    }
}

/// How a session's packets travel between two SVR routers (spec §2.7, §10.1, O7, O8).
enum Carriage: UInt8 {
    /// TCP as TCP: the outer TCP header is the original one with waypoint ports.
    case nativeTCP = 0
    /// UDP as UDP.
    case nativeUDP = 1
    /// TCP carried as UDP: the original TCP header follows the metadata (O7).
    case tcpOverUDP = 2
    /// ICMP echo carried as UDP: the original 8-byte ICMP header follows the metadata (O8).
    case icmpOverUDP = 3

    var wireProtocol: UInt8 { self == .nativeTCP ? IPProtocolNumber.tcp : IPProtocolNumber.udp }
    var originalProtocol: UInt8 {
        switch self {
        case .nativeTCP, .tcpOverUDP: IPProtocolNumber.tcp
        case .nativeUDP: IPProtocolNumber.udp
        case .icmpOverUDP: IPProtocolNumber.icmp
        }
    }
    /// The carriage of an original protocol toward a peer with `transport`.
    static func of(proto: UInt8, transport: Config.Transport) -> Carriage? {
        switch proto {
        case IPProtocolNumber.tcp: transport == .udp ? .tcpOverUDP : .nativeTCP
        case IPProtocolNumber.udp: .nativeUDP
        case IPProtocolNumber.icmp: .icmpOverUDP
        default: nil
        }
    }
    var name: String { self == .nativeTCP || self == .nativeUDP ? "native" : "udp" }
}

/// A peer with its keys, crypto contexts and the path sessions take to it.
final class PeerRuntime {
    let index: Int
    let name: String
    let nameBytes: [UInt8]
    let transport: Config.Transport
    let waypoints: [IPAddress]
    /// §6.3 trailer, time-based, HMAC-SHA256-128, on packets we send: keyed with our sender
    /// key of the pair (`PeerKeys.hmacSendKey`, direction binding).
    var auth: PacketAuthenticator
    /// Verifies the trailers of packets from the peer (its sender key, `hmacReceiveKey`).
    var authIn: PacketAuthenticator
    /// Seals/opens metadata payload-TLV sections to and from this peer (AES-256-CBC, O6).
    var meta: MetadataSectionCipher
    /// The first reachable (local interface, remote waypoint) pair; nil when none.
    var path: PeerPathID?
    var pathInterface = 0
    var localAddress: UInt32 = 0
    var remoteAddress: UInt32 = 0
    /// The path's MTU now: the interface's (configured `mtu`, else the device's), lowered by
    /// an ICMP "fragmentation needed" from the underlay (`learnedMTU`, until it expires).
    /// See SVRRouter+MTU.swift.
    var mtu = 1500
    var learnedMTU = 0
    var learnedAt: UInt64 = 0
    /// The largest metadata block this router writes toward this peer (forward or reverse).
    var metadataBound = 0

    init(index: Int, peer: Config.Peer, keys: PeerKeys) throws(CryptoError) {
        self.index = index
        name = peer.name
        nameBytes = Array(peer.name.utf8)
        transport = peer.transport
        waypoints = peer.waypoints.map(\.address)
        auth = try PacketAuthenticator(key: keys.hmacSendKey, algorithm: .sha256_128, mode: .timeBased)
        authIn = try PacketAuthenticator(key: keys.hmacReceiveKey, algorithm: .sha256_128, mode: .timeBased)
        meta = try MetadataSectionCipher(key: keys.metadataKey)
    }
}

/// Where a service's sessions go from this router.
enum RouteKind: Equatable {
    case none
    case local
    case peers([Int])
}

struct ServiceRuntime {
    let name: String
    let nameBytes: [UInt8]
    let suite: CipherSuite
    let adaptive: Bool
    let route: RouteKind
    let config: Config.Service
}

extension CipherSuite {
    init(_ e: Config.Encryption) {
        switch e {
        case .aesCBCHMAC: self = .aes256CbcHmacSha256_128
        case .aesGCM: self = .aes256Gcm
        case .none: self = .none
        }
    }

    var viewName: String {
        switch self {
        case .none: "none"
        case .aes256CbcHmacSha256_128: "aes-cbc-hmac"
        case .aes256Gcm: "aes-gcm"
        }
    }
}

extension Duration {
    var wholeSeconds: UInt32 { UInt32(clamping: max(components.seconds, 1)) }
}
