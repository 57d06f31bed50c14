// The declarative nftables model svrd installs: one table with its chains, sets and rules.
// `Nftables.replace(_:)` turns a model into one atomic batch (see NftEncoder.swift).

/// One nftables table, owned as a whole by its creator and replaced atomically.
public struct NftTable: Hashable, Sendable {
    public var name: String
    public var family: NftFamily
    /// Chains in creation order (rules jumping to a chain may appear in any chain).
    public var chains: [NftChain]
    public var sets: [NftSet]

    public init(name: String, family: NftFamily, chains: [NftChain] = [], sets: [NftSet] = []) {
        self.name = name
        self.family = family
        self.chains = chains
        self.sets = sets
    }
}

/// A chain: a base chain when `hook` is set, a regular chain (jump/goto target) otherwise.
public struct NftChain: Hashable, Sendable {
    public var name: String
    public var hook: BaseHook?
    public var rules: [NftRule]

    /// Where a base chain attaches.
    public struct BaseHook: Hashable, Sendable {
        public var type: NftChainType
        public var hook: NftHook
        /// Lower runs first (filter is 0, srcnat 100, dstnat -100).
        public var priority: Int32
        public var policy: NftPolicy
        /// The device of a netdev `ingress` chain (required there, not allowed elsewhere).
        public var device: String?

        public init(type: NftChainType, hook: NftHook, priority: Int32, policy: NftPolicy = .accept,
                    device: String? = nil) {
            self.type = type
            self.hook = hook
            self.priority = priority
            self.policy = policy
            self.device = device
        }
    }

    /// A base chain (`type T hook H [device D] priority P; policy X;`).
    public init(name: String, type: NftChainType, hook: NftHook, priority: Int32 = 0,
                policy: NftPolicy = .accept, device: String? = nil, rules: [NftRule] = []) {
        self.name = name
        self.hook = BaseHook(type: type, hook: hook, priority: priority, policy: policy, device: device)
        self.rules = rules
    }

    /// A regular chain, reached by `jump`/`goto`.
    public init(name: String, rules: [NftRule] = []) {
        self.name = name
        self.hook = nil
        self.rules = rules
    }
}

/// A named set. Key type and element kinds must agree (checked before sending).
public struct NftSet: Hashable, Sendable {
    public enum KeyType: Hashable, Sendable {
        case ipv4Address, ipv6Address, inetService

        /// nft's datatype number (TYPE_IPADDR 7, TYPE_IP6ADDR 8, TYPE_INET_SERVICE 13) and key length.
        var datatype: UInt32 {
            switch self {
            case .ipv4Address: 7
            case .ipv6Address: 8
            case .inetService: 13
            }
        }
        var length: Int {
            switch self {
            case .ipv4Address: 4
            case .ipv6Address: 16
            case .inetService: 2
            }
        }
    }

    public var name: String
    public var keyType: KeyType
    /// `flags interval`: needed for prefixes and ranges. Overlapping or adjacent intervals
    /// are merged before sending (the kernel rejects overlaps).
    public var interval: Bool
    public var elements: [NftSetElement]

    public init(name: String, keyType: KeyType, interval: Bool = false, elements: [NftSetElement] = []) {
        self.name = name
        self.keyType = keyType
        self.interval = interval
        self.elements = elements
    }
}

/// One element of a set.
public enum NftSetElement: Hashable, Sendable {
    case address(NftAddress)
    /// Interval sets only.
    case prefix(NftPrefix)
    /// Inclusive address range, interval sets only.
    case addressRange(NftAddress, NftAddress)
    case port(UInt16)
    /// Inclusive port range, interval sets only.
    case portRange(ClosedRange<UInt16>)
}

/// An address to match: one address, a prefix, or membership of a named set.
public enum NftAddressMatch: Hashable, Sendable {
    case address(NftAddress)
    case prefix(NftPrefix)
    /// A set of this table; its key type selects the ip or ip6 header.
    case set(String)
}

/// A port to match: one port, an inclusive range, or membership of a named set.
public enum NftPortMatch: Hashable, Sendable {
    case port(UInt16)
    case range(ClosedRange<UInt16>)
    case set(String)
}

/// Which transport header a port match reads: `tcp`/`udp` add a `meta l4proto` check,
/// `any` is nft's `th` (raw transport header, no protocol check).
public enum NftPortProtocol: Hashable, Sendable {
    case tcp, udp, any
}

/// A match of a rule (all matches of a rule must hold).
public enum NftMatch: Hashable, Sendable {
    /// `ip saddr` / `ip6 saddr` (the header follows from the address or set).
    case sourceAddress(NftAddressMatch)
    case destinationAddress(NftAddressMatch)
    /// `meta l4proto P`
    case l4proto(NftL4Protocol)
    /// `tcp|udp|th sport …`
    case sourcePort(NftPortProtocol, NftPortMatch)
    /// `tcp|udp|th dport …`
    case destinationPort(NftPortProtocol, NftPortMatch)
    /// `meta iifname "x"`; a trailing `*` matches a name prefix.
    case inputInterfaceName(String)
    case outputInterfaceName(String)
    /// `meta iif N` / `meta oif N` (interface index).
    case inputInterfaceIndex(UInt32)
    case outputInterfaceIndex(UInt32)
    /// `meta mark M`
    case mark(UInt32)
    /// `ct state s1,s2` (any of)
    case ctState(NftCtState)
    /// `ct mark M` (the connection's conntrack mark)
    case ctMark(UInt32)
    /// `tcp flags syn` (SYN set; adds `meta l4proto tcp`)
    case tcpSyn
    /// The negation of a match (`!=`, `!= @set`): its protocol dependencies still hold, e.g.
    /// `.not(.destinationPort(.udp, .range(1...9)))` is "UDP and port outside 1-9",
    /// `.not(.ctState([.new, .invalid]))` is "neither new nor invalid". Not nestable.
    indirect case not(NftMatch)
}

/// What a rule does once its matches hold, in order.
public enum NftStatement: Hashable, Sendable {
    case counter
    case accept
    case drop
    /// `return` to the calling chain.
    case `return`
    case jump(String)
    case goto(String)
    /// `meta mark set M`
    case setMark(UInt32)
    /// `ct mark set M` (marks the connection; its later packets, both ways, match `.ctMark`)
    case setCtMark(UInt32)
    /// `masquerade` (nat postrouting)
    case masquerade
    /// `snat ip|ip6 to ADDRESS` (nat postrouting)
    case snat(NftAddress)
    /// `tcp flags syn tcp option maxseg size set N` (the SYN/TCP checks are included).
    case clampMSS(UInt16)
    /// `tcp flags syn tcp option maxseg size set rt mtu` (forward/output/postrouting only).
    case clampMSSToRoute
    /// `fwd to DEVICE` by interface index (netdev ingress chains only).
    case forward(interfaceIndex: UInt32)
    /// `fwd to "name"`: the name is resolved to its index when the batch is built (as nft
    /// does), in the calling thread's network namespace; a missing device throws ENODEV.
    case forwardToDevice(String)
    /// `tproxy to :PORT` (prerouting chains; the rule must match tcp or udp first): hands
    /// the packet to a local IP_TRANSPARENT socket bound to PORT without changing it.
    case tproxy(port: UInt16)
    /// `notrack` (prerouting/output chains, priority before conntrack).
    case notrack
}

/// One rule: all `matches`, then the `statements`. `tag` is stored as the rule's nft comment
/// (userdata), so `nft list` shows it and `Nftables.ruleCounters` can name the rule.
public struct NftRule: Hashable, Sendable {
    public var tag: String?
    public var matches: [NftMatch]
    public var statements: [NftStatement]

    public init(tag: String? = nil, _ matches: [NftMatch] = [], then statements: [NftStatement]) {
        self.tag = tag
        self.matches = matches
        self.statements = statements
    }
}
