// Longest-prefix match for IPv4 and IPv6.
//
// Design: a multibit trie with a wide root (16 bits when the table is large, 8 otherwise)
// followed by 4-bit strides (controlled prefix expansion), path-compressed after the build. Each trie entry is one `UInt64`:
// the high half holds value+1 of the longest prefix that ends at this level and covers the
// entry (0: none), the low half the index of the child node's first entry (0: no child; the
// root starts at 0, so no child ever does). A lookup reads one entry per level, remembering
// the last value it passed: IPv4 needs at most 1 + 4 reads with the 16-bit root, IPv6 at
// most 1 + 28 (a /48 needs 9). Prefixes are inserted shortest first, so expanding a longer
// prefix simply overwrites the shorter one's value in the entries it covers. Chains of nodes
// that hold nothing but one child are then skipped: the reference jumps to the end of the
// chain and is marked, and the lookup checks the key against that node's path once.
//
// Alternatives measured for the choice are in docs/perf/session.md. The table is built once
// from a list and never changed (an immutable, `Sendable` snapshot); a new configuration
// builds a new table. Lookups do not allocate.

/// Why a prefix table could not be built.
public enum PrefixTableError: Error, Sendable, Equatable {
    /// The same prefix appears twice.
    case duplicatePrefix(IPPrefix)
    /// The table would exceed 2^32 trie entries.
    case tooLarge
    /// `UInt32.max` is reserved.
    case valueOutOfRange
}

/// A longest-prefix-match table from IPv4 and IPv6 prefixes to `UInt32` values.
public struct PrefixTable: Sendable {
    private let v4: PrefixTrie
    private let v6: PrefixTrie

    /// Builds the table. Both address families may be mixed in `entries`.
    public init(_ entries: [(prefix: IPPrefix, value: UInt32)]) throws(PrefixTableError) {
        var e4: [(hi: UInt64, lo: UInt64, length: Int, value: UInt32)] = []
        var e6: [(hi: UInt64, lo: UInt64, length: Int, value: UInt32)] = []
        var seen = Set<IPPrefix>()
        for (p, v) in entries {
            guard seen.insert(p).inserted else { throw .duplicatePrefix(p) }
            switch p.address {
            case .v4(let a): e4.append((UInt64(a.value) << 32, 0, Int(p.length), v))
            case .v6(let a): e6.append((a.high, a.low, Int(p.length), v))
            }
        }
        v4 = try PrefixTrie(e4)
        v6 = try PrefixTrie(e6)
    }

    /// Number of IPv4 and IPv6 prefixes.
    public var count: Int { v4.count + v6.count }

    /// Bytes held by the trie entries (both families).
    public var memoryBytes: Int { (v4.entries.count + v6.entries.count) * 8 }

    /// The value of the longest prefix containing `address`, or nil.
    @inlinable public func lookup(_ address: IPv4Address) -> UInt32? {
        lookup4(address.value)
    }

    /// The value of the longest prefix containing `address`, or nil.
    @inlinable public func lookup(_ address: IPv6Address) -> UInt32? {
        lookup6(address.high, address.low)
    }

    /// The value of the longest prefix containing `address`, or nil.
    @inlinable public func lookup(_ address: IPAddress) -> UInt32? {
        switch address {
        case .v4(let a): lookup4(a.value)
        case .v6(let a): lookup6(a.high, a.low)
        }
    }

    @usableFromInline func lookup4(_ a: UInt32) -> UInt32? { v4.lookup(UInt64(a) << 32, 0) }
    @usableFromInline func lookup6(_ hi: UInt64, _ lo: UInt64) -> UInt32? { v6.lookup(hi, lo) }
}

/// One address family's multibit trie (addresses left-aligned in 128 bits).
struct PrefixTrie: Sendable {
    static let stride = 4
    /// Tables with more prefixes than this get a 16-bit root (512 KiB), smaller ones 8 bits.
    static let wideRootThreshold = 1024

    /// Child references with this bit set skipped a chain of pass-through nodes: the lookup
    /// must check the target node's path before reading it.
    static let skip = 1 << 31

    /// Each child node is preceded by a 3-word header: the key bits leading to it (masked,
    /// high and low half) and the bit offset its own index starts at. It sits next to the
    /// node's entries, so checking it after a skip costs no extra cache miss in most cases.
    static let header = 3

    let rootBits: Int
    let entries: [UInt64]
    let count: Int

    init(_ list: [(hi: UInt64, lo: UInt64, length: Int, value: UInt32)]) throws(PrefixTableError) {
        let root = list.count > Self.wideRootThreshold ? 16 : 8
        var t = [UInt64](repeating: 0, count: 1 << root)
        for p in list.sorted(by: { $0.length < $1.length }) {
            guard p.value != UInt32.max else { throw .valueOutOfRange }
            var base = 0
            var offset = 0
            var width = root
            while p.length > offset + width {
                let slot = base + Self.bits(p.hi, p.lo, offset, width)
                var child = Int(UInt32(truncatingIfNeeded: t[slot]))
                if child == 0 {
                    child = t.count + Self.header
                    guard child + (1 << Self.stride) < Self.skip else { throw .tooLarge }
                    let (hm, lm) = Self.masks(offset + width)
                    t.append(contentsOf: [p.hi & hm, p.lo & lm, UInt64(offset + width)])
                    t.append(contentsOf: repeatElement(0, count: 1 << Self.stride))
                    t[slot] |= UInt64(child)
                }
                base = child
                offset += width
                width = Self.stride
            }
            // The prefix ends inside this level: it covers 2^(unused bits) consecutive entries.
            let first = base + Self.bits(p.hi, p.lo, offset, width)
            let tagged = UInt64(p.value &+ 1) << 32
            for i in first..<first + (1 << (offset + width - p.length)) {
                t[i] = tagged | (t[i] & 0xFFFF_FFFF)
            }
        }
        // Path compression: a node whose only non-empty entry is a child without a value
        // decides nothing; point past chains of such nodes and mark the reference, so sparse
        // regions (one /48 under a /32, one /24 under a /16) cost one read instead of many.
        func passThrough(_ node: Int) -> Int? {
            var only: UInt64 = 0
            for i in node..<node + (1 << Self.stride) where t[i] != 0 {
                guard only == 0, t[i] >> 32 == 0 else { return nil }
                only = t[i]
            }
            return only == 0 ? nil : Int(UInt32(truncatingIfNeeded: only))
        }
        func compress(_ i: Int) {
            var child = Int(UInt32(truncatingIfNeeded: t[i]))
            guard child != 0 else { return }
            var skipped = false
            while let next = passThrough(child) {
                child = next
                skipped = true
            }
            if skipped { t[i] = t[i] & 0xFFFF_FFFF_0000_0000 | UInt64(child | Self.skip) }
        }
        for i in 0..<1 << root { compress(i) }
        var node = (1 << root) + Self.header
        while node < t.count {
            for i in node..<node + (1 << Self.stride) { compress(i) }
            node += Self.header + (1 << Self.stride)
        }
        rootBits = root
        entries = t
        count = list.count
    }

    /// Masks keeping the first `length` bits of a 128-bit key.
    @inline(__always)
    static func masks(_ length: Int) -> (UInt64, UInt64) {
        let hm: UInt64 = length <= 0 ? 0 : (length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length))
        let lm: UInt64 = length <= 64 ? 0 : (length >= 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
        return (hm, lm)
    }

    /// `width` bits of the 128-bit key starting at bit `offset` (0 = most significant). Levels
    /// never straddle the two halves: 64 is a multiple of every level boundary.
    @inline(__always)
    static func bits(_ hi: UInt64, _ lo: UInt64, _ offset: Int, _ width: Int) -> Int {
        let word = offset < 64 ? hi << UInt64(offset) : lo << UInt64(offset - 64)
        return Int(truncatingIfNeeded: word >> UInt64(64 - width))
    }

    @usableFromInline
    func lookup(_ hi: UInt64, _ lo: UInt64) -> UInt32? {
        var e = entries[Self.bits(hi, lo, 0, rootBits)]
        var best = e >> 32
        var offset = rootBits
        var child = Int(UInt32(truncatingIfNeeded: e))
        while child != 0 {
            if child & Self.skip != 0 {
                // Skipped levels: the key must follow the path to this node, else nothing
                // longer than `best` can match.
                child &= ~Self.skip
                offset = Int(truncatingIfNeeded: entries[child - 1])
                let (hm, lm) = Self.masks(offset)
                if (hi ^ entries[child - 3]) & hm != 0 || (lo ^ entries[child - 2]) & lm != 0 { break }
            }
            e = entries[child + Self.bits(hi, lo, offset, Self.stride)]
            if e >> 32 != 0 { best = e >> 32 }
            child = Int(UInt32(truncatingIfNeeded: e))
            offset += Self.stride
        }
        return best == 0 ? nil : UInt32(truncatingIfNeeded: best - 1)
    }
}
