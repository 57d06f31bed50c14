// The nftables session svrd uses to own its table: replace it atomically, delete it, ask
// whether it exists, and read its rules' counters back.

internal import CNetlink
import Glibc

/// A table as listed by the kernel.
public struct NftTableID: Hashable, Sendable {
    public var name: String
    public var family: NftFamily

    public init(name: String, family: NftFamily) {
        self.name = name
        self.family = family
    }
}

/// A rule as read back from the kernel.
public struct NftRuleInfo: Hashable, Sendable {
    public var chain: String
    /// The kernel's handle (unique within the table, stable until the rule is replaced).
    public var handle: UInt64
    /// The rule's comment, i.e. `NftRule.tag` of the model.
    public var tag: String?
    /// The first `counter` statement's values, nil if the rule has none.
    public var packets: UInt64?
    public var bytes: UInt64?
}

/// A NETLINK_NETFILTER session for nftables. Not thread-safe: one owner at a time.
public final class Nftables {
    private let socket: NetlinkSocket

    /// Opens the netfilter netlink socket (needs CAP_NET_ADMIN for changes).
    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(.netfilter)
        // Large batches and their ACKs must fit the socket buffers (one ACK per message);
        // the FORCE variants need CAP_NET_ADMIN and are best effort.
        var size: Int32 = 4 << 20
        _ = setsockopt(socket.fileDescriptor, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(4))
        _ = setsockopt(socket.fileDescriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(4))
    }

    /// Replaces `table` (creating it if needed) with exactly the given chains, sets and
    /// rules, in one atomic transaction (`nft -f` of a file that starts with
    /// `add table …; delete table …`). On any error the previous table stays as it was and
    /// the error names the refused message. Rules are recreated, so counters restart at 0.
    public func replace(_ table: NftTable) throws(NetlinkError) {
        let batch = try NftEncoder.replaceBatch(table)
        try commit(batch, operation: "replace table \(table.family) \(table.name)")
    }

    /// The nfnetlink batch `replace(table)` would send (sequence numbers from 0), for dry
    /// runs, logging and measuring; throws the same model errors as `replace`.
    public static func batchBytes(for table: NftTable) throws(NetlinkError) -> [UInt8] {
        try NftEncoder.replaceBatch(table).bytes
    }

    /// Deletes a table (`nft delete table FAMILY NAME`). Returns false if it did not exist.
    @discardableResult
    public func delete(table: String, family: NftFamily) throws(NetlinkError) -> Bool {
        do {
            try commit(NftEncoder.deleteBatch(table: table, family: family),
                       operation: "delete table \(family) \(table)")
            return true
        } catch where error.errno == ENOENT {
            return false
        }
    }

    /// Whether the table exists (`nft list table FAMILY NAME` succeeds).
    public func tableExists(_ name: String, family: NftFamily) throws(NetlinkError) -> Bool {
        var m = NftEncoder.getTables(name: name, family: family)
        do {
            try socket.request(&m, operation: "get table \(family) \(name)")
            return true
        } catch where error.errno == ENOENT {
            return false
        }
    }

    /// Every table of the known families (`nft list tables`), or of one family.
    public func tables(family: NftFamily? = nil) throws(NetlinkError) -> [NftTableID] {
        var m = NftEncoder.getTables(name: nil, family: family)
        var out = [NftTableID]()
        try socket.request(&m, operation: "list tables") { reply in
            guard reply.payload.count >= 4, let f = NftFamily(nfproto: reply.payload[0]) else { return }
            let a = NetlinkAttributes(reply.payload, offset: 4)
            if let name = a.string(UInt16(NFTA_TABLE_NAME.rawValue)) { out.append(NftTableID(name: name, family: f)) }
        }
        return out
    }

    /// The rules of a table in kernel order, with handles, tags and counter values
    /// (`nft -a list table FAMILY NAME`).
    public func rules(table: String, family: NftFamily) throws(NetlinkError) -> [NftRuleInfo] {
        var m = NftEncoder.dumpRules(table: table, family: family)
        var out = [NftRuleInfo]()
        try socket.request(&m, operation: "list rules of table \(family) \(table)") { reply in
            guard reply.payload.count >= 4 else { return }
            out.append(Self.parseRule(NetlinkAttributes(reply.payload, offset: 4)))
        }
        return out
    }

    // MARK: private

    private func commit(_ encoded: NftEncodedBatch, operation: @autoclosure () -> String) throws(NetlinkError) {
        var batch = encoded
        let count = UInt32(batch.messageCount)
        var base = socket.allocateSequence(count: count)
        if base > UInt32.max - count {
            base = socket.allocateSequence(count: count)  // the ACK range must not wrap around 0
        }
        batch.setSequence(base: base)
        let sent = batch.bytes.withUnsafeBytes { b in
            Result { () throws(NetlinkError) in try socket.send(b, operation: operation()) }
        }
        try sent.get()
        guard let acks = batch.acknowledged(base: base) else { return }
        do {
            try socket.receive(until: acks, operation: operation())
        } catch {
            // Name the message the kernel refused (the whole batch was rolled back).
            var e = error
            if let seq = e.sequence, seq >= base, Int(seq - base) < batch.messageCount {
                let failed = "refused: " + batch.descriptions[Int(seq - base)]
                e.detail = e.detail.map { $0 + "; " + failed } ?? failed
            }
            throw e
        }
    }

    private static func parseRule(_ a: NetlinkAttributes) -> NftRuleInfo {
        var info = NftRuleInfo(
            chain: a.string(UInt16(NFTA_RULE_CHAIN.rawValue)) ?? "",
            handle: a.u64be(UInt16(NFTA_RULE_HANDLE.rawValue)) ?? 0)
        if let u = a[UInt16(NFTA_RULE_USERDATA.rawValue)] {
            // TLVs of one-byte type and length; type 0 is nft's comment.
            var o = 0
            while o + 2 <= u.count {
                let type = u[o], len = Int(u[o + 1])
                guard o + 2 + len <= u.count else { break }
                if type == 0 {
                    info.tag = String(decoding: u[(o + 2)..<(o + 2 + len)].prefix { $0 != 0 }, as: UTF8.self)
                }
                o += 2 + len
            }
        }
        guard let list = a.nested(UInt16(NFTA_RULE_EXPRESSIONS.rawValue)) else { return info }
        for element in list.entries where element.type == UInt16(NFTA_LIST_ELEM.rawValue) {
            let e = NetlinkAttributes(element.value, offset: 0)
            guard e.string(UInt16(NFTA_EXPR_NAME.rawValue)) == "counter",
                  let d = e.nested(UInt16(NFTA_EXPR_DATA.rawValue)) else { continue }
            info.packets = d.u64be(UInt16(NFTA_COUNTER_PACKETS.rawValue)) ?? 0
            info.bytes = d.u64be(UInt16(NFTA_COUNTER_BYTES.rawValue)) ?? 0
            break
        }
        return info
    }
}
