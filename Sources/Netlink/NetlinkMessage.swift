// Building netlink messages with libmnl into an owned buffer, and reading attributes back.

internal import CNetlink
import Glibc

/// One netlink request under construction (control plane; owns its buffer).
public struct NetlinkMessage: ~Copyable {
    let buffer: UnsafeMutableRawPointer
    let capacity: Int
    let header: UnsafeMutablePointer<nlmsghdr>

    /// Starts a message of `type` with `flags` (NLM_F_REQUEST is always added) and an extra
    /// header of `extraHeaderSize` bytes (zeroed; fill it with `withExtraHeader`).
    public init(type: UInt16, flags: UInt16, extraHeaderSize: Int = 0, capacity: Int = 8192) {
        buffer = .allocate(byteCount: capacity, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        self.capacity = capacity
        header = mnl_nlmsg_put_header(buffer)
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = flags | UInt16(NLM_F_REQUEST)
        if extraHeaderSize > 0 { _ = mnl_nlmsg_put_extra_header(header, extraHeaderSize) }
    }

    deinit { buffer.deallocate() }

    /// Size of the message so far.
    public var length: Int { Int(header.pointee.nlmsg_len) }

    /// Sets the sequence number (the socket does this when sending).
    public mutating func setSequence(_ seq: UInt32) { header.pointee.nlmsg_seq = seq }

    /// Gives typed access to the extra header (e.g. ifinfomsg, rtmsg).
    public mutating func withExtraHeader<T, R>(as: T.Type, _ body: (inout T) -> R) -> R {
        let p = (buffer + 16).bindMemory(to: T.self, capacity: 1)
        return body(&p.pointee)
    }

    private func ensure(_ extra: Int) {
        precondition(length + 4 + ((extra + 3) & ~3) <= capacity, "netlink message over capacity")
    }

    public mutating func put(_ type: UInt16, u8 value: UInt8) { ensure(1); mnl_attr_put_u8(header, type, value) }
    public mutating func put(_ type: UInt16, u16 value: UInt16) { ensure(2); mnl_attr_put_u16(header, type, value) }
    public mutating func put(_ type: UInt16, u32 value: UInt32) { ensure(4); mnl_attr_put_u32(header, type, value) }
    /// A NUL-terminated string attribute.
    public mutating func put(_ type: UInt16, string value: String) {
        ensure(value.utf8.count + 1)
        mnl_attr_put_strz(header, type, value)
    }
    public mutating func put(_ type: UInt16, bytes value: [UInt8]) {
        ensure(value.count)
        value.withUnsafeBytes { mnl_attr_put(header, type, $0.count, $0.baseAddress) }
    }
    /// A nested attribute: `body` adds the inner attributes.
    public mutating func nest(_ type: UInt16, _ body: (inout NetlinkMessage) -> Void) {
        ensure(0)
        let start = mnl_attr_nest_start(header, type)
        body(&self)
        mnl_attr_nest_end(header, start)
    }

    /// The message bytes so far.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    /// A copy of the message bytes (for golden tests).
    public var bytes: [UInt8] { withBytes { Array($0) } }
}

/// Attributes of a reply, parsed without copying (valid as long as the payload is).
public struct NetlinkAttributes {
    /// (type with the nested/byte-order flags cleared, value bytes)
    public private(set) var entries: [(type: UInt16, value: UnsafeRawBufferPointer)] = []

    /// Parses the attribute stream starting at `offset` of `payload`.
    public init(_ payload: UnsafeRawBufferPointer, offset: Int) {
        var o = offset
        while o + 4 <= payload.count {
            let len = Int(payload.loadUnaligned(fromByteOffset: o, as: UInt16.self))
            let type = payload.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self) & 0x3fff
            guard len >= 4, o + len <= payload.count else { break }
            entries.append((type, UnsafeRawBufferPointer(rebasing: payload[(o + 4)..<(o + len)])))
            o += (len + 3) & ~3
        }
    }

    public subscript(type: UInt16) -> UnsafeRawBufferPointer? { entries.first { $0.type == type }?.value }

    public func u8(_ type: UInt16) -> UInt8? { self[type].flatMap { $0.count >= 1 ? $0[0] : nil } }
    public func u16(_ type: UInt16) -> UInt16? {
        self[type].flatMap { $0.count >= 2 ? $0.loadUnaligned(as: UInt16.self) : nil }
    }
    public func u32(_ type: UInt16) -> UInt32? {
        self[type].flatMap { $0.count >= 4 ? $0.loadUnaligned(as: UInt32.self) : nil }
    }
    /// Big-endian u32 (nftables attributes are network order).
    public func u32be(_ type: UInt16) -> UInt32? { u32(type).map { UInt32(bigEndian: $0) } }
    public func u64be(_ type: UInt16) -> UInt64? {
        self[type].flatMap { $0.count >= 8 ? UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) : nil }
    }
    public func string(_ type: UInt16) -> String? {
        self[type].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    /// The attributes nested inside `type`.
    public func nested(_ type: UInt16) -> NetlinkAttributes? {
        self[type].map { NetlinkAttributes($0, offset: 0) }
    }
}

/// nlmsghdr flag values (linux/netlink.h), as Swift constants.
public enum NetlinkFlags {
    public static let request: UInt16 = 0x1
    public static let multi: UInt16 = 0x2
    public static let ack: UInt16 = 0x4
    /// GET requests
    public static let dump: UInt16 = 0x300
    /// NEW requests
    public static let replace: UInt16 = 0x100
    public static let exclusive: UInt16 = 0x200
    public static let create: UInt16 = 0x400
    public static let append: UInt16 = 0x800
}
