// Compiles the declarative model (NftModel.swift) into nftables register-machine
// expressions, the same sequences `nft --debug=netlink` prints for the equivalent nft rule,
// and set keys (interval sets as start / end+1 boundaries, like nft's segtree). Pure Swift:
// the libnftnl encoding of the result is in NftEncoder.swift.
//
// Every load goes to register 1 (NFT_REG_1, a 16-byte register), verdicts to register 0.

import Glibc

/// One kernel expression (register 1 is the only data register used).
enum NftExpr: Hashable {
    enum PayloadBase: Hashable { case network, transport }
    enum CmpOp: Hashable { case eq, neq, gte, lte }
    enum MetaKey: Hashable { case `protocol`, mark, iif, oif, iifname, oifname, nfproto, l4proto }
    enum Verdict: Hashable { case accept, drop, `return`, jump, goto }

    case payload(PayloadBase, offset: UInt32, length: UInt32)
    case cmp(CmpOp, [UInt8])
    /// reg1 = (reg1 & mask) ^ xor
    case bitwise(mask: [UInt8], xor: [UInt8])
    case metaLoad(MetaKey)
    case metaSet(MetaKey)
    case ctState
    /// reg1 = ct mark
    case ctMarkLoad
    /// ct mark = reg1
    case ctMarkSet
    /// Set membership (`inverted`: not a member, NFT_LOOKUP_F_INV).
    case lookup(set: String, setID: UInt32, inverted: Bool)
    /// reg1 outside [from, to] (NFT_RANGE_NEQ; a positive range is two cmps, as nft emits)
    case rangeOutside(from: [UInt8], to: [UInt8])
    case counter
    case immediate([UInt8])
    case verdict(Verdict, chain: String?)
    case snat(ipv6: Bool)
    case masquerade
    /// Writes reg1 into TCP option `kind` at `offset`, `length` bytes (tcp option maxseg size).
    case tcpOptionWrite(kind: UInt8, offset: UInt32, length: UInt32)
    case routeTCPMSS
    /// reg1 = htons(reg1) for a 2-byte value
    case hton16
    case forward
    /// tproxy to the port in reg1; `family` 0 (both, inet only), 2 or 10
    case tproxy(family: UInt8)
    case notrack
}

/// A compiled rule.
struct NftCompiledRule: Hashable {
    var chain: String
    /// Position in the chain (0-based), for error messages.
    var index: Int
    var tag: String?
    var expressions: [NftExpr]
}

/// One element key of a compiled set, with the NFT_SET_ELEM_INTERVAL_END flag.
struct NftSetKey: Hashable {
    var key: [UInt8]
    var intervalEnd: Bool
}

/// A compiled set: its id within the batch and the element keys in kernel form.
struct NftCompiledSet: Hashable {
    var set: NftSet
    var id: UInt32
    var keys: [NftSetKey]
}

struct NftCompiler {
    let table: NftTable
    /// Set name → batch id (1-based, in table order).
    let setIDs: [String: UInt32]

    init(_ table: NftTable) {
        self.table = table
        var ids = [String: UInt32]()
        for (i, s) in table.sets.enumerated() { ids[s.name] = UInt32(i + 1) }
        setIDs = ids
    }

    private func fail(_ what: String) -> NetlinkError {
        NetlinkError(operation: "replace table \(table.family) \(table.name)", errno: EINVAL, detail: what)
    }

    // MARK: checks common to the whole table

    func checkTable() throws(NetlinkError) {
        func check(_ name: String, _ kind: String) throws(NetlinkError) {
            guard !name.isEmpty, name.utf8.count < 256, !name.utf8.contains(0) else {
                throw fail("invalid \(kind) name \"\(name)\"")
            }
        }
        try check(table.name, "table")
        var seen = Set<String>()
        for c in table.chains {
            try check(c.name, "chain")
            guard seen.insert(c.name).inserted else { throw fail("duplicate chain \(c.name)") }
            if let h = c.hook, h.hook.number(in: table.family) == nil {
                throw fail("chain \(c.name): no \(h.hook) hook in family \(table.family)")
            }
        }
        seen.removeAll()
        for s in table.sets {
            try check(s.name, "set")
            guard seen.insert(s.name).inserted else { throw fail("duplicate set \(s.name)") }
        }
    }

    // MARK: sets

    func compile(set: NftSet) throws(NetlinkError) -> NftCompiledSet {
        let id = setIDs[set.name]!
        let length = set.keyType.length
        func key(_ e: NftSetElement) throws(NetlinkError) -> (low: [UInt8], high: [UInt8]) {
            switch (e, set.keyType) {
            case (.address(let a), .ipv4Address), (.address(let a), .ipv6Address):
                guard a.bytes.count == length else { break }
                return (a.bytes, a.bytes)
            case (.prefix(let p), .ipv4Address), (.prefix(let p), .ipv6Address):
                guard p.address.bytes.count == length, set.interval else { break }
                return (p.address.bytes, p.last.bytes)
            case (.addressRange(let a, let b), .ipv4Address), (.addressRange(let a, let b), .ipv6Address):
                guard a.bytes.count == length, b.bytes.count == length, set.interval,
                      !b.bytes.lexicographicallyPrecedes(a.bytes) else { break }
                return (a.bytes, b.bytes)
            case (.port(let p), .inetService):
                return (p.bigEndianBytes, p.bigEndianBytes)
            case (.portRange(let r), .inetService):
                guard set.interval else { break }
                return (r.lowerBound.bigEndianBytes, r.upperBound.bigEndianBytes)
            default:
                break
            }
            throw fail("set \(set.name): element \(e) does not fit key type \(set.keyType)"
                       + (set.interval ? "" : " without interval flag"))
        }
        var ranges = [(low: [UInt8], high: [UInt8])]()
        for e in set.elements { ranges.append(try key(e)) }
        guard set.interval else {
            var seen = Set<[UInt8]>()
            return NftCompiledSet(set: set, id: id, keys: ranges.compactMap {
                seen.insert($0.low).inserted ? NftSetKey(key: $0.low, intervalEnd: false) : nil
            })
        }
        // Sort, merge overlapping and adjacent intervals, then emit boundaries as nft does:
        // a leading "0 END" unless the first interval starts at 0, each start, and end+1
        // flagged END unless the interval runs to the last key.
        ranges.sort { $0.low.lexicographicallyPrecedes($1.low) }
        var merged = [(low: [UInt8], high: [UInt8])]()
        for r in ranges {
            if let last = merged.last, let next = incremented(last.high),
               !next.lexicographicallyPrecedes(r.low) {
                if last.high.lexicographicallyPrecedes(r.high) { merged[merged.count - 1].high = r.high }
            } else if let last = merged.last, incremented(last.high) == nil {
                continue  // the previous interval already reaches the end of the key space
            } else {
                merged.append(r)
            }
        }
        var keys = [NftSetKey]()
        let zero = [UInt8](repeating: 0, count: length)
        if let first = merged.first, first.low != zero { keys.append(NftSetKey(key: zero, intervalEnd: true)) }
        for r in merged {
            keys.append(NftSetKey(key: r.low, intervalEnd: false))
            if let end = incremented(r.high) { keys.append(NftSetKey(key: end, intervalEnd: true)) }
        }
        return NftCompiledSet(set: set, id: id, keys: keys)
    }

    // MARK: rules

    /// Per-rule state: dependencies already emitted, so each appears once per rule.
    private struct RuleState {
        var expressions: [NftExpr] = []
        var networkDependency: Bool?  // the IPv6-ness already checked
        var l4proto: UInt8?
        /// Inside `.not(…)`: the match's own comparison is inverted, its dependencies are not.
        var negate = false

        /// Appends the comparison that decides the match (inverted under `.not`).
        mutating func decide(_ data: [UInt8], _ op: NftExpr.CmpOp = .eq) {
            let inverted: NftExpr.CmpOp = switch op {
            case .eq: .neq
            case .neq: .eq
            case .gte, .lte: preconditionFailure("ranges are negated with rangeOutside")
            }
            expressions.append(.cmp(negate ? inverted : op, data))
        }
    }

    func compile(rule: NftRule, chain: String, index: Int) throws(NetlinkError) -> NftCompiledRule {
        var s = RuleState()
        if let tag = rule.tag, tag.utf8.count > 127 || tag.utf8.contains(0) {
            throw fail("chain \(chain): rule tag longer than 127 bytes or containing NUL")
        }
        for m in rule.matches { try add(m, to: &s, chain: chain) }
        for st in rule.statements { try add(st, to: &s, chain: chain) }
        // Bounds the encoded size (each expression carries at most one name of < 256 bytes).
        guard s.expressions.count <= 128 else { throw fail("chain \(chain): rule has more than 128 expressions") }
        return NftCompiledRule(chain: chain, index: index, tag: rule.tag, expressions: s.expressions)
    }

    private func networkDependency(ipv6: Bool, _ s: inout RuleState, chain: String) throws(NetlinkError) {
        if s.networkDependency == ipv6 { return }
        switch table.family {
        case .inet:
            s.expressions += [.metaLoad(.nfproto), .cmp(.eq, [ipv6 ? 10 : 2])]
        case .netdev:
            s.expressions += [.metaLoad(.protocol), .cmp(.eq, ipv6 ? [0x86, 0xdd] : [0x08, 0x00])]
        case .ip where ipv6, .ip6 where !ipv6:
            throw fail("chain \(chain): an \(ipv6 ? "IPv6" : "IPv4") match in a table of family \(table.family)")
        case .ip, .ip6:
            break
        }
        s.networkDependency = ipv6
    }

    private func l4Dependency(_ proto: UInt8, _ s: inout RuleState) {
        if s.l4proto == proto { return }
        s.expressions += [.metaLoad(.l4proto), .cmp(.eq, [proto])]
        s.l4proto = proto
    }

    private func addressMatch(_ m: NftAddressMatch, source: Bool, _ s: inout RuleState,
                              chain: String) throws(NetlinkError) {
        let ipv6: Bool
        switch m {
        case .address(let a): ipv6 = !a.isIPv4
        case .prefix(let p): ipv6 = !p.address.isIPv4
        case .set(let name):
            switch table.sets.first(where: { $0.name == name })?.keyType {
            case .ipv4Address: ipv6 = false
            case .ipv6Address: ipv6 = true
            case .inetService: throw fail("chain \(chain): set \(name) holds ports, not addresses")
            case nil: throw fail("chain \(chain): no set named \(name) in this table")
            }
        }
        try networkDependency(ipv6: ipv6, &s, chain: chain)
        let offset: UInt32 = ipv6 ? (source ? 8 : 24) : (source ? 12 : 16)
        let full: UInt32 = ipv6 ? 16 : 4
        switch m {
        case .address(let a):
            s.expressions.append(.payload(.network, offset: offset, length: full))
            s.decide(a.bytes)
        case .prefix(let p):
            // /0 matches every packet of the family (only the dependency remains).
            guard p.length > 0 else {
                if s.negate { throw fail("chain \(chain): a negated /0 prefix matches nothing") }
                return
            }
            if p.length % 8 == 0 {
                // Byte-aligned: compare only the prefix bytes (as nft does).
                let n = p.length / 8
                s.expressions.append(.payload(.network, offset: offset, length: UInt32(n)))
                s.decide(Array(p.address.bytes[0..<n]))
            } else {
                s.expressions += [.payload(.network, offset: offset, length: full),
                                  .bitwise(mask: p.maskBytes, xor: [UInt8](repeating: 0, count: Int(full)))]
                s.decide(p.address.bytes)
            }
        case .set(let name):
            s.expressions += [.payload(.network, offset: offset, length: full), try lookup(name, &s, chain: chain)]
        }
    }

    private func lookup(_ name: String, _ s: inout RuleState, chain: String) throws(NetlinkError) -> NftExpr {
        guard let id = setIDs[name] else { throw fail("chain \(chain): no set named \(name) in this table") }
        return .lookup(set: name, setID: id, inverted: s.negate)
    }

    private func portMatch(_ proto: NftPortProtocol, _ m: NftPortMatch, source: Bool,
                           _ s: inout RuleState, chain: String) throws(NetlinkError) {
        switch proto {
        case .tcp: l4Dependency(6, &s)
        case .udp: l4Dependency(17, &s)
        case .any: break
        }
        s.expressions.append(.payload(.transport, offset: source ? 0 : 2, length: 2))
        switch m {
        case .port(let p):
            s.decide(p.bigEndianBytes)
        case .range(let r) where r.lowerBound == r.upperBound:
            s.decide(r.lowerBound.bigEndianBytes)
        case .range(let r) where s.negate:
            s.expressions.append(.rangeOutside(from: r.lowerBound.bigEndianBytes, to: r.upperBound.bigEndianBytes))
        case .range(let r):
            s.expressions += [.cmp(.gte, r.lowerBound.bigEndianBytes), .cmp(.lte, r.upperBound.bigEndianBytes)]
        case .set(let name):
            let keyType = table.sets.first { $0.name == name }?.keyType
            if keyType == .ipv4Address || keyType == .ipv6Address {
                throw fail("chain \(chain): set \(name) holds addresses, not ports")
            }
            s.expressions.append(try lookup(name, &s, chain: chain))
        }
    }

    private func interfaceName(_ name: String, input: Bool, _ s: inout RuleState, chain: String) throws(NetlinkError) {
        var bytes = Array(name.utf8)
        let wildcard = bytes.last == UInt8(ascii: "*")
        if wildcard { bytes.removeLast() }
        guard bytes.count < 16, !bytes.contains(0) else { throw fail("chain \(chain): bad interface name \"\(name)\"") }
        if !wildcard { bytes += [UInt8](repeating: 0, count: 16 - bytes.count) }
        if bytes.isEmpty, s.negate { throw fail("chain \(chain): a negated \"*\" matches nothing") }
        s.expressions.append(.metaLoad(input ? .iifname : .oifname))
        if !bytes.isEmpty { s.decide(bytes) }
    }

    private func tcpSyn(_ s: inout RuleState) {
        l4Dependency(6, &s)
        s.expressions += [.payload(.transport, offset: 13, length: 1), .bitwise(mask: [0x02], xor: [0])]
        s.decide([0], .neq)
    }

    private func add(_ m: NftMatch, to s: inout RuleState, chain: String) throws(NetlinkError) {
        switch m {
        case .sourceAddress(let a): try addressMatch(a, source: true, &s, chain: chain)
        case .destinationAddress(let a): try addressMatch(a, source: false, &s, chain: chain)
        case .l4proto(let p) where s.negate:
            s.expressions.append(.metaLoad(.l4proto))
            s.decide([p.number])
        case .l4proto(let p): l4Dependency(p.number, &s)
        case .sourcePort(let proto, let p): try portMatch(proto, p, source: true, &s, chain: chain)
        case .destinationPort(let proto, let p): try portMatch(proto, p, source: false, &s, chain: chain)
        case .inputInterfaceName(let n): try interfaceName(n, input: true, &s, chain: chain)
        case .outputInterfaceName(let n): try interfaceName(n, input: false, &s, chain: chain)
        case .inputInterfaceIndex(let i):
            s.expressions.append(.metaLoad(.iif))
            s.decide(i.hostBytes)
        case .outputInterfaceIndex(let i):
            s.expressions.append(.metaLoad(.oif))
            s.decide(i.hostBytes)
        case .mark(let v):
            s.expressions.append(.metaLoad(.mark))
            s.decide(v.hostBytes)
        case .ctState(let st):
            s.expressions += [.ctState, .bitwise(mask: st.rawValue.hostBytes, xor: [0, 0, 0, 0])]
            s.decide([0, 0, 0, 0], .neq)
        case .ctMark(let v):
            s.expressions.append(.ctMarkLoad)
            s.decide(v.hostBytes)
        case .tcpSyn: tcpSyn(&s)
        case .not(let inner):
            guard !s.negate else { throw fail("chain \(chain): nested .not") }
            s.negate = true
            defer { s.negate = false }
            try add(inner, to: &s, chain: chain)
        }
    }

    private func add(_ st: NftStatement, to s: inout RuleState, chain: String) throws(NetlinkError) {
        switch st {
        case .counter: s.expressions.append(.counter)
        case .accept: s.expressions.append(.verdict(.accept, chain: nil))
        case .drop: s.expressions.append(.verdict(.drop, chain: nil))
        case .return: s.expressions.append(.verdict(.return, chain: nil))
        case .jump(let c), .goto(let c):
            guard table.chains.contains(where: { $0.name == c && $0.hook == nil }) else {
                throw fail("chain \(chain): jump/goto target \(c) is not a regular chain of this table")
            }
            if case .jump = st { s.expressions.append(.verdict(.jump, chain: c)) }
            else { s.expressions.append(.verdict(.goto, chain: c)) }
        case .setMark(let v): s.expressions += [.immediate(v.hostBytes), .metaSet(.mark)]
        case .setCtMark(let v): s.expressions += [.immediate(v.hostBytes), .ctMarkSet]
        case .masquerade: s.expressions.append(.masquerade)
        case .snat(let a):
            if (table.family == .ip && !a.isIPv4) || (table.family == .ip6 && a.isIPv4) {
                throw fail("chain \(chain): snat to \(a) in a table of family \(table.family)")
            }
            s.expressions += [.immediate(a.bytes), .snat(ipv6: !a.isIPv4)]
        case .clampMSS(let mss):
            tcpSyn(&s)
            s.expressions += [.immediate(mss.bigEndianBytes), .tcpOptionWrite(kind: 2, offset: 2, length: 2)]
        case .clampMSSToRoute:
            tcpSyn(&s)
            s.expressions += [.routeTCPMSS, .hton16, .tcpOptionWrite(kind: 2, offset: 2, length: 2)]
        case .forward(let index): s.expressions += [.immediate(index.hostBytes), .forward]
        case .forwardToDevice(let name):
            let index = if_nametoindex(name)
            guard index != 0 else {
                throw NetlinkError(operation: "replace table \(table.family) \(table.name)", errno: ENODEV,
                                   detail: "chain \(chain): fwd to \"\(name)\": no such device")
            }
            s.expressions += [.immediate(index.hostBytes), .forward]
        case .tproxy(let port):
            guard s.l4proto == 6 || s.l4proto == 17 else {
                throw fail("chain \(chain): tproxy needs a tcp or udp match before it")
            }
            let family: UInt8 = switch table.family {
            case .ip: 2
            case .ip6: 10
            case .inet, .netdev: 0
            }
            s.expressions += [.immediate(port.bigEndianBytes), .tproxy(family: family)]
        case .notrack: s.expressions.append(.notrack)
        }
    }
}

/// The big-endian successor of a key, or nil when it is the last key (all ones).
func incremented(_ key: [UInt8]) -> [UInt8]? {
    var b = key
    for i in b.indices.reversed() {
        if b[i] == 0xff { b[i] = 0 } else { b[i] += 1; return b }
    }
    return nil
}

extension UInt16 {
    var bigEndianBytes: [UInt8] { [UInt8(self >> 8), UInt8(self & 0xff)] }
}

extension UInt32 {
    /// Host (little-endian on our targets) byte order, as meta/ct registers hold values.
    var hostBytes: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
}
