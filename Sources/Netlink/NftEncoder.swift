// libnftnl encoding: compiled tables, chains, sets and rules (NftCompiler.swift) become one
// nfnetlink batch. This file holds all of the nftables layer's libnftnl pointer work and
// every conversion of a C enum (they import in three shapes: named enums as structs with
// rawValue, anonymous enums as Int, #defines as Int32).
//
// Batch layout of a replace (one transaction, all or nothing):
//   BEGIN, NEWTABLE, DELTABLE, NEWTABLE, NEWCHAIN…, NEWSET…, NEWSETELEM…, NEWRULE…, END
// The first NEWTABLE makes the DELTABLE succeed when the table does not exist yet, so the
// batch replaces or creates without duplicating any rule (NLM_F_CREATE appends rules).

internal import CNetlink
import Glibc

// MARK: C constant conversions (the only place they are spelled)

private func attr<T: BinaryInteger>(_ v: T) -> UInt16 { UInt16(v) }
private let reg1 = NFT_REG_1.rawValue
private let regVerdict = NFT_REG_VERDICT.rawValue

private func msgType(_ t: nf_tables_msg_types) -> UInt16 { UInt16(t.rawValue) }

private extension NftExpr.PayloadBase {
    var c: UInt32 {
        switch self {
        case .network: NFT_PAYLOAD_NETWORK_HEADER.rawValue
        case .transport: NFT_PAYLOAD_TRANSPORT_HEADER.rawValue
        }
    }
}

private extension NftExpr.CmpOp {
    var c: UInt32 {
        switch self {
        case .eq: NFT_CMP_EQ.rawValue
        case .neq: NFT_CMP_NEQ.rawValue
        case .gte: NFT_CMP_GTE.rawValue
        case .lte: NFT_CMP_LTE.rawValue
        }
    }
}

private extension NftExpr.MetaKey {
    var c: UInt32 {
        switch self {
        case .protocol: NFT_META_PROTOCOL.rawValue
        case .mark: NFT_META_MARK.rawValue
        case .iif: NFT_META_IIF.rawValue
        case .oif: NFT_META_OIF.rawValue
        case .iifname: NFT_META_IIFNAME.rawValue
        case .oifname: NFT_META_OIFNAME.rawValue
        case .nfproto: NFT_META_NFPROTO.rawValue
        case .l4proto: NFT_META_L4PROTO.rawValue
        }
    }
}

private extension NftExpr.Verdict {
    var c: UInt32 {
        switch self {
        case .accept: UInt32(NF_ACCEPT)
        case .drop: UInt32(NF_DROP)
        case .return: UInt32(bitPattern: NFT_RETURN.rawValue)
        case .jump: UInt32(bitPattern: NFT_JUMP.rawValue)
        case .goto: UInt32(bitPattern: NFT_GOTO.rawValue)
        }
    }
}

// MARK: batches

/// The bytes of one nfnetlink batch and which sequence numbers expect an ACK.
struct NftEncodedBatch {
    /// BEGIN … END, every message's sequence number relative to 0 (BEGIN is 0).
    private(set) var bytes: [UInt8]
    /// What each message does ("add rule 3 to chain input"), BEGIN and END included.
    let descriptions: [String]
    /// Number of messages including BEGIN and END.
    var messageCount: Int { descriptions.count }

    init(bytes: [UInt8], descriptions: [String]) {
        self.bytes = bytes
        self.descriptions = descriptions
    }

    /// Renumbers the messages `base`, `base+1`, … (BEGIN first).
    mutating func setSequence(base: UInt32) {
        var offset = 0
        var i: UInt32 = 0
        while offset + 16 <= bytes.count {
            let len = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16
                | Int(bytes[offset + 3]) << 24
            let seq = (base &+ i).littleEndian
            withUnsafeBytes(of: seq) { s in for k in 0..<4 { bytes[offset + 8 + k] = s[k] } }
            offset += (len + 3) & ~3
            i += 1
        }
    }

    /// The sequence numbers that get an ACK (every message but BEGIN and END). `base` must
    /// leave room for the whole batch below UInt32.max (see `Nftables.commit`).
    func acknowledged(base: UInt32) -> ClosedRange<UInt32>? {
        messageCount > 2 ? (base + 1)...(base + UInt32(messageCount) - 2) : nil
    }
}

/// Writes messages into a scratch buffer with libnftnl and appends them to the batch.
private final class NftBatchWriter {
    private static let scratchSize = 1 << 16
    private let scratch: UnsafeMutableRawPointer
    private var bytes: [UInt8] = []
    private var descriptions: [String] = []

    init() {
        scratch = .allocate(byteCount: Self.scratchSize, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: Self.scratchSize)
        append("begin batch") { buf, seq in nftnl_batch_begin(buf, seq) }
    }

    deinit { scratch.deallocate() }

    /// Calls `header` to write a message header at the scratch start, then `payload`.
    /// `estimate` bounds the message size (libnftnl does not check the buffer).
    private func append(_ what: String, estimate: Int = 64,
                        _ header: (UnsafeMutablePointer<CChar>, UInt32) -> UnsafeMutablePointer<nlmsghdr>?,
                        payload: (UnsafeMutablePointer<nlmsghdr>) -> Void = { _ in }) {
        precondition(estimate <= Self.scratchSize, "nftables message over the scratch buffer")
        let buf = scratch.assumingMemoryBound(to: CChar.self)
        guard let nlh = header(buf, UInt32(descriptions.count)) else {
            preconditionFailure("libnftnl returned no header")
        }
        payload(nlh)
        let len = Int(nlh.pointee.nlmsg_len)
        precondition(len <= Self.scratchSize)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: len))
        let padded = (len + 3) & ~3
        if padded > len { bytes.append(contentsOf: repeatElement(0, count: padded - len)) }
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: padded)
        descriptions.append(what)
    }

    /// One nf_tables message with NLM_F_ACK (plus `flags`).
    func message(_ type: nf_tables_msg_types, family: NftFamily, flags: UInt16, _ what: String,
                 estimate: Int = 512, _ payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        append(what, estimate: estimate, { buf, seq in
            nftnl_nlmsg_build_hdr(buf, msgType(type), family.nfproto, flags | NetlinkFlags.ack, seq)
        }, payload: payload)
    }

    func finish() -> NftEncodedBatch {
        append("end batch") { buf, seq in nftnl_batch_end(buf, seq) }
        return NftEncodedBatch(bytes: bytes, descriptions: descriptions)
    }
}

enum NftEncoder {
    /// Elements per NEWSETELEM message (keeps each message far below the scratch size).
    static let elementsPerMessage = 256

    /// The batch that atomically replaces (or creates) `table`. Throws on model errors.
    static func replaceBatch(_ table: NftTable) throws(NetlinkError) -> NftEncodedBatch {
        let compiler = NftCompiler(table)
        try compiler.checkTable()
        var sets = [NftCompiledSet]()
        for s in table.sets { sets.append(try compiler.compile(set: s)) }
        var rules = [NftCompiledRule]()
        for c in table.chains {
            for (i, r) in c.rules.enumerated() {
                rules.append(try compiler.compile(rule: r, chain: c.name, index: i))
            }
        }

        let w = NftBatchWriter()
        let create = NetlinkFlags.create
        w.message(NFT_MSG_NEWTABLE, family: table.family, flags: create, "add table") { tableBody($0, table.name) }
        w.message(NFT_MSG_DELTABLE, family: table.family, flags: 0, "delete table") {
            tableBody($0, table.name, delete: true)
        }
        w.message(NFT_MSG_NEWTABLE, family: table.family, flags: create, "create table") { tableBody($0, table.name) }
        for c in table.chains {
            w.message(NFT_MSG_NEWCHAIN, family: table.family, flags: create, "add chain \(c.name)") {
                chainBody($0, table.name, table.family, c)
            }
        }
        for s in sets {
            w.message(NFT_MSG_NEWSET, family: table.family, flags: create, "add set \(s.set.name)") {
                setBody($0, table, s)
            }
            var start = 0
            while start < s.keys.count {
                let chunk = s.keys[start..<min(start + elementsPerMessage, s.keys.count)]
                w.message(NFT_MSG_NEWSETELEM, family: table.family, flags: create,
                          "add elements \(start)..<\(start + chunk.count) to set \(s.set.name)",
                          estimate: 512 + chunk.count * (s.set.keyType.length + 64)) {
                    elementsBody($0, table.name, s, chunk)
                }
                start += chunk.count
            }
        }
        for r in rules {
            let what = "add rule \(r.index) to chain \(r.chain)" + (r.tag.map { " (\"\($0)\")" } ?? "")
            w.message(NFT_MSG_NEWRULE, family: table.family, flags: create | NetlinkFlags.append, what,
                      estimate: 1024 + r.expressions.count * 416) { ruleBody($0, table.name, r) }
        }
        return w.finish()
    }

    /// The batch that deletes a table (ENOENT if it does not exist).
    static func deleteBatch(table: String, family: NftFamily) -> NftEncodedBatch {
        let w = NftBatchWriter()
        w.message(NFT_MSG_DELTABLE, family: family, flags: 0, "delete table") { tableBody($0, table, delete: true) }
        return w.finish()
    }

    /// A GETTABLE request for one table (`name`) or a dump of all tables (`name == nil`).
    static func getTables(name: String?, family: NftFamily?) -> NetlinkMessage {
        var m = NetlinkMessage(type: msgType(NFT_MSG_GETTABLE) | UInt16(NFNL_SUBSYS_NFTABLES) << 8,
                               flags: NetlinkFlags.ack | (name == nil ? NetlinkFlags.dump : 0),
                               extraHeaderSize: 4)
        m.withExtraHeader(as: nfgenmsg.self) { $0.nfgen_family = UInt8(family?.nfproto ?? 0) }
        if let name { m.put(attr(NFTA_TABLE_NAME.rawValue), string: name) }
        return m
    }

    /// A GETRULE dump of one table's rules.
    static func dumpRules(table: String, family: NftFamily) -> NetlinkMessage {
        var m = NetlinkMessage(type: msgType(NFT_MSG_GETRULE) | UInt16(NFNL_SUBSYS_NFTABLES) << 8,
                               flags: NetlinkFlags.ack | NetlinkFlags.dump, extraHeaderSize: 4)
        m.withExtraHeader(as: nfgenmsg.self) { $0.nfgen_family = UInt8(family.nfproto) }
        m.put(attr(NFTA_RULE_TABLE.rawValue), string: table)
        return m
    }

    // MARK: message bodies

    /// NEWTABLE (name and flags 0) or, with `delete`, DELTABLE (name only), as nft sends them.
    private static func tableBody(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ name: String, delete: Bool = false) {
        let t = nftnl_table_alloc()!
        defer { nftnl_table_free(t) }
        nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME.rawValue), name)
        if !delete { nftnl_table_set_u32(t, attr(NFTNL_TABLE_FLAGS.rawValue), 0) }
        nftnl_table_nlmsg_build_payload(nlh, t)
    }

    private static func chainBody(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ table: String, _ family: NftFamily,
                                  _ chain: NftChain) {
        let c = nftnl_chain_alloc()!
        defer { nftnl_chain_free(c) }
        nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE.rawValue), table)
        nftnl_chain_set_str(c, attr(NFTNL_CHAIN_NAME.rawValue), chain.name)
        if let h = chain.hook {
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TYPE.rawValue), h.type.rawValue)
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_HOOKNUM.rawValue), h.hook.number(in: family)!)
            nftnl_chain_set_s32(c, attr(NFTNL_CHAIN_PRIO.rawValue), h.priority)
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_POLICY.rawValue), UInt32(h.policy == .accept ? NF_ACCEPT : NF_DROP))
            if let d = h.device { nftnl_chain_set_str(c, attr(NFTNL_CHAIN_DEV.rawValue), d) }
        }
        nftnl_chain_nlmsg_build_payload(nlh, c)
    }

    private static func newSet(_ table: String, _ s: NftCompiledSet) -> OpaquePointer {
        let n = nftnl_set_alloc()!
        nftnl_set_set_str(n, attr(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(n, attr(NFTNL_SET_NAME.rawValue), s.set.name)
        nftnl_set_set_u32(n, attr(NFTNL_SET_ID.rawValue), s.id)
        return n
    }

    private static func setBody(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ table: NftTable, _ s: NftCompiledSet) {
        let n = newSet(table.name, s)
        defer { nftnl_set_free(n) }
        nftnl_set_set_u32(n, attr(NFTNL_SET_FLAGS.rawValue), s.set.interval ? NFT_SET_INTERVAL.rawValue : 0)
        nftnl_set_set_u32(n, attr(NFTNL_SET_KEY_TYPE.rawValue), s.set.keyType.datatype)
        nftnl_set_set_u32(n, attr(NFTNL_SET_KEY_LEN.rawValue), UInt32(s.set.keyType.length))
        // nft's set userdata: TLV NFTNL_UDATA_SET_KEYBYTEORDER (0) = BYTEORDER_BIG_ENDIAN (2),
        // so `nft list` prints the keys as addresses and ports.
        let udata: [UInt8] = [0, 4] + UInt32(2).hostBytes
        _ = udata.withUnsafeBytes {
            nftnl_set_set_data(n, attr(NFTNL_SET_USERDATA.rawValue), $0.baseAddress, UInt32($0.count))
        }
        nftnl_set_nlmsg_build_payload(nlh, n)
    }

    private static func elementsBody(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ table: String, _ s: NftCompiledSet,
                                     _ keys: ArraySlice<NftSetKey>) {
        let n = newSet(table, s)
        defer { nftnl_set_free(n) }
        for k in keys {
            let e = nftnl_set_elem_alloc()!
            _ = k.key.withUnsafeBytes {
                nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
            }
            if k.intervalEnd {
                nftnl_set_elem_set_u32(e, attr(NFTNL_SET_ELEM_FLAGS), NFT_SET_ELEM_INTERVAL_END.rawValue)
            }
            nftnl_set_elem_add(n, e)
        }
        nftnl_set_elems_nlmsg_build_payload(nlh, n)
    }

    private static func ruleBody(_ nlh: UnsafeMutablePointer<nlmsghdr>, _ table: String, _ rule: NftCompiledRule) {
        let r = nftnl_rule_alloc()!
        defer { nftnl_rule_free(r) }
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE.rawValue), table)
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN.rawValue), rule.chain)
        if let tag = rule.tag {
            // nft's rule comment: TLV NFTNL_UDATA_RULE_COMMENT (0), NUL-terminated.
            let udata: [UInt8] = [0, UInt8(tag.utf8.count + 1)] + Array(tag.utf8) + [0]
            _ = udata.withUnsafeBytes {
                nftnl_rule_set_data(r, attr(NFTNL_RULE_USERDATA.rawValue), $0.baseAddress, UInt32($0.count))
            }
        }
        for e in rule.expressions { nftnl_rule_add_expr(r, expression(e)) }
        nftnl_rule_nlmsg_build_payload(nlh, r)
    }

    /// One libnftnl expression (the rule takes ownership).
    private static func expression(_ e: NftExpr) -> OpaquePointer {
        switch e {
        case .payload(let base, let offset, let length):
            return make("payload", [(NFTNL_EXPR_PAYLOAD_DREG, reg1), (NFTNL_EXPR_PAYLOAD_BASE, base.c),
                                    (NFTNL_EXPR_PAYLOAD_OFFSET, offset), (NFTNL_EXPR_PAYLOAD_LEN, length)])
        case .cmp(let op, let value):
            return make("cmp", [(NFTNL_EXPR_CMP_SREG, reg1), (NFTNL_EXPR_CMP_OP, op.c)],
                        data: [(NFTNL_EXPR_CMP_DATA, value)])
        case .bitwise(let mask, let xor):
            return make("bitwise", [(NFTNL_EXPR_BITWISE_SREG, reg1), (NFTNL_EXPR_BITWISE_DREG, reg1),
                                    (NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))],
                        data: [(NFTNL_EXPR_BITWISE_MASK, mask), (NFTNL_EXPR_BITWISE_XOR, xor)])
        case .metaLoad(let key):
            return make("meta", [(NFTNL_EXPR_META_KEY, key.c), (NFTNL_EXPR_META_DREG, reg1)])
        case .metaSet(let key):
            return make("meta", [(NFTNL_EXPR_META_KEY, key.c), (NFTNL_EXPR_META_SREG, reg1)])
        case .ctState:
            return make("ct", [(NFTNL_EXPR_CT_KEY, NFT_CT_STATE.rawValue), (NFTNL_EXPR_CT_DREG, reg1)])
        case .ctMarkLoad:
            return make("ct", [(NFTNL_EXPR_CT_KEY, NFT_CT_MARK.rawValue), (NFTNL_EXPR_CT_DREG, reg1)])
        case .ctMarkSet:
            return make("ct", [(NFTNL_EXPR_CT_KEY, NFT_CT_MARK.rawValue), (NFTNL_EXPR_CT_SREG, reg1)])
        case .lookup(let set, let id, let inverted):
            let flags = inverted ? [(NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV.rawValue)] : []
            return make("lookup", [(NFTNL_EXPR_LOOKUP_SREG, reg1), (NFTNL_EXPR_LOOKUP_SET_ID, id)] + flags,
                        string: (NFTNL_EXPR_LOOKUP_SET, set))
        case .rangeOutside(let from, let to):
            return make("range", [(NFTNL_EXPR_RANGE_SREG, reg1), (NFTNL_EXPR_RANGE_OP, NFT_RANGE_NEQ.rawValue)],
                        data: [(NFTNL_EXPR_RANGE_FROM_DATA, from), (NFTNL_EXPR_RANGE_TO_DATA, to)])
        case .counter:
            return make("counter", [])
        case .immediate(let value):
            return make("immediate", [(NFTNL_EXPR_IMM_DREG, reg1)], data: [(NFTNL_EXPR_IMM_DATA, value)])
        case .verdict(let v, let chain):
            return make("immediate", [(NFTNL_EXPR_IMM_DREG, regVerdict), (NFTNL_EXPR_IMM_VERDICT, v.c)],
                        string: chain.map { (NFTNL_EXPR_IMM_CHAIN, $0) })
        case .snat(let ipv6):
            return make("nat", [(NFTNL_EXPR_NAT_TYPE, NFT_NAT_SNAT.rawValue),
                                (NFTNL_EXPR_NAT_FAMILY, UInt32(ipv6 ? NFPROTO_IPV6 : NFPROTO_IPV4)),
                                (NFTNL_EXPR_NAT_REG_ADDR_MIN, reg1)])
        case .masquerade:
            return make("masq", [])
        case .tcpOptionWrite(let kind, let offset, let length):
            let x = make("exthdr", [(NFTNL_EXPR_EXTHDR_SREG, reg1), (NFTNL_EXPR_EXTHDR_OFFSET, offset),
                                    (NFTNL_EXPR_EXTHDR_LEN, length),
                                    (NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT.rawValue)])
            nftnl_expr_set_u8(x, attr(NFTNL_EXPR_EXTHDR_TYPE), kind)
            return x
        case .routeTCPMSS:
            return make("rt", [(NFTNL_EXPR_RT_KEY, NFT_RT_TCPMSS.rawValue), (NFTNL_EXPR_RT_DREG, reg1)])
        case .hton16:
            return make("byteorder", [(NFTNL_EXPR_BYTEORDER_SREG, reg1), (NFTNL_EXPR_BYTEORDER_DREG, reg1),
                                      (NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON.rawValue),
                                      (NFTNL_EXPR_BYTEORDER_LEN, 2), (NFTNL_EXPR_BYTEORDER_SIZE, 2)])
        case .forward:
            return make("fwd", [(NFTNL_EXPR_FWD_SREG_DEV, reg1)])
        case .tproxy(let family):
            return make("tproxy", [(NFTNL_EXPR_TPROXY_FAMILY, UInt32(family)), (NFTNL_EXPR_TPROXY_REG_PORT, reg1)])
        case .notrack:
            return make("notrack", [])
        }
    }

    /// Allocates expression `name` and sets u32, data and string attributes, in that order.
    private static func make(_ name: String, _ values: [(Int, UInt32)], data: [(Int, [UInt8])] = [],
                             string: (Int, String)? = nil) -> OpaquePointer {
        let x = nftnl_expr_alloc(name)!
        for (a, v) in values { nftnl_expr_set_u32(x, attr(a), v) }
        for (a, v) in data {
            _ = v.withUnsafeBytes { nftnl_expr_set(x, attr(a), $0.baseAddress, UInt32($0.count)) }
        }
        if let (a, v) = string { nftnl_expr_set_str(x, attr(a), v) }
        return x
    }
}
