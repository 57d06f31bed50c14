// ICMPv4 error packets the engine writes itself (RFC 792): today "fragmentation needed"
// (type 3 code 4, RFC 1191) back to a LAN sender whose DF packet does not fit a peer path.

enum ICMPError {
    /// Writes `[IPv4 20][ICMP type, code, checksum, word][quoted bytes]` at `p` and returns
    /// its length. `word` is the 4 bytes after the checksum (for "fragmentation needed": the
    /// next-hop MTU in the low 16 bits). The quote is the offending packet's first `count`
    /// bytes (its IP header and at least 8 bytes behind it).
    static func writeV4(_ p: UnsafeMutableRawPointer, type: UInt8, code: UInt8, word: UInt32, source: UInt32, destination: UInt32,
                        quoting q: UnsafeRawPointer, count: Int) -> Int {
        let total = 28 + count
        st8(p, 20, type)
        st8(p, 21, code)
        st16(p, 22, 0)
        st32(p, 24, word)
        (p + 28).copyMemory(from: q, byteCount: count)
        EngineWire.writeIPv4(p, totalLength: total, proto: IPProtocolNumber.icmp, source: source, destination: destination,
                             carry: IPv4Carry(tos: 0, identification: 0, dontFragment: false, ttl: 64))
        EngineWire.finishL4Checksum(p, l4: 20, total: total, proto: IPProtocolNumber.icmp)
        return total
    }
}
