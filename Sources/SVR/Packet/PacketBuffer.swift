// PacketBuffer: a mutable, non-owning view of one packet inside a larger preallocated slot.
//
//   slot ─┬──────────── headroom ───────────┬──────── packet (count bytes) ────────┬─ tailroom ─┐
//         0                               offset                          offset + count    capacity
//
// Receive paths (TUN reads, UDP/raw-socket receives, in-memory test links) hand over a slot
// pointer, the offset of the first packet byte, the packet length and the slot capacity. The
// engine then edits the packet in place: NAT rewrites touch bytes, metadata insertion opens a
// gap by sliding the (short) IP+L4 headers into the headroom, the HMAC trailer uses the
// tailroom. Nothing here allocates.
//
// Raw memory is touched only in this file and in Checksum.swift; the header views and the
// packet edits go through the accessors below.

import Glibc

/// A mutable view of one packet inside a preallocated slot. It does **not** own memory: the
/// slot must stay allocated, and must not be used by anyone else, while the view is in use.
/// Copies of a `PacketBuffer` alias the same bytes but keep their own offset and count, so after
/// a length-changing edit only the edited copy describes the packet correctly.
///
/// Thread-confined: it is meant to live on the data-plane thread that owns the slot.
public struct PacketBuffer {
    /// The first byte of the slot (not of the packet).
    public let slot: UnsafeMutableRawPointer
    /// Size of the whole slot in bytes.
    public let capacity: Int
    @usableFromInline var _offset: Int
    @usableFromInline var _count: Int

    /// Describes a packet of `count` bytes starting `offset` bytes into a slot of `capacity` bytes.
    @inlinable
    public init(slot: UnsafeMutableRawPointer, capacity: Int, offset: Int, count: Int) throws(PacketError) {
        guard capacity >= 0, offset >= 0, count >= 0, offset <= capacity, count <= capacity - offset else {
            throw .invalidSlot(capacity: capacity, offset: offset, count: count)
        }
        self.slot = slot
        self.capacity = capacity
        _offset = offset
        _count = count
    }

    /// Describes a packet of `count` bytes starting `offset` bytes into `slot`.
    @inlinable
    public init(slot: UnsafeMutableRawBufferPointer, offset: Int, count: Int) throws(PacketError) {
        guard let base = slot.baseAddress else {
            throw .invalidSlot(capacity: slot.count, offset: offset, count: count)
        }
        try self.init(slot: base, capacity: slot.count, offset: offset, count: count)
    }

    /// Offset of the first packet byte inside the slot; equals the free bytes in front of it.
    @inlinable public var offset: Int { _offset }
    /// Packet length in bytes.
    @inlinable public var count: Int { _count }
    /// Free bytes in front of the packet.
    @inlinable public var headroom: Int { _offset }
    /// Free bytes after the packet.
    @inlinable public var tailroom: Int { capacity - _offset - _count }

    /// Calls `body` with the packet bytes (valid only during the call).
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: slot + _offset, count: _count))
    }

    /// Calls `body` with the packet bytes, writable (valid only during the call).
    @inlinable
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: slot + _offset, count: _count))
    }

    /// A copy of the packet bytes. Allocates: for tests and the control plane, never per packet.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    // ---- checked field access (big-endian) -----------------------------------------------

    @inlinable
    func check(_ at: Int, _ length: Int) throws(PacketError) {
        guard at >= 0, length >= 0, at <= _count, length <= _count - at else {
            throw .outOfBounds(offset: at, length: length, packetLength: _count)
        }
    }

    /// The byte at `at`.
    @inlinable public func byte(at: Int) throws(PacketError) -> UInt8 { try check(at, 1); return u8(at) }
    /// The big-endian 16-bit value at `at`.
    @inlinable public func uint16(at: Int) throws(PacketError) -> UInt16 { try check(at, 2); return u16(at) }
    /// The big-endian 32-bit value at `at`.
    @inlinable public func uint32(at: Int) throws(PacketError) -> UInt32 { try check(at, 4); return u32(at) }
    /// Stores `value` at `at`.
    @inlinable public func setByte(_ value: UInt8, at: Int) throws(PacketError) { try check(at, 1); setU8(value, at) }
    /// Stores `value` big-endian at `at`.
    @inlinable public func setUInt16(_ value: UInt16, at: Int) throws(PacketError) { try check(at, 2); setU16(value, at) }
    /// Stores `value` big-endian at `at`.
    @inlinable public func setUInt32(_ value: UInt32, at: Int) throws(PacketError) { try check(at, 4); setU32(value, at) }

    /// Copies `bytes` into the packet at `at` (the packet does not grow).
    @inlinable
    public func copy(_ bytes: UnsafeRawBufferPointer, to at: Int) throws(PacketError) {
        try check(at, bytes.count)
        guard let src = bytes.baseAddress else { return }
        (slot + _offset + at).copyMemory(from: src, byteCount: bytes.count)
    }

    // ---- unchecked access: callers have validated the range --------------------------------

    @inlinable func u8(_ at: Int) -> UInt8 {
        assert(at >= 0 && at < _count)
        return slot.load(fromByteOffset: _offset + at, as: UInt8.self)
    }
    @inlinable func u16(_ at: Int) -> UInt16 {
        assert(at >= 0 && at + 2 <= _count)
        return UInt16(bigEndian: slot.loadUnaligned(fromByteOffset: _offset + at, as: UInt16.self))
    }
    @inlinable func u32(_ at: Int) -> UInt32 {
        assert(at >= 0 && at + 4 <= _count)
        return UInt32(bigEndian: slot.loadUnaligned(fromByteOffset: _offset + at, as: UInt32.self))
    }
    @inlinable func u64(_ at: Int) -> UInt64 {
        assert(at >= 0 && at + 8 <= _count)
        return UInt64(bigEndian: slot.loadUnaligned(fromByteOffset: _offset + at, as: UInt64.self))
    }
    @inlinable func setU8(_ v: UInt8, _ at: Int) {
        assert(at >= 0 && at < _count)
        slot.storeBytes(of: v, toByteOffset: _offset + at, as: UInt8.self)
    }
    @inlinable func setU16(_ v: UInt16, _ at: Int) {
        assert(at >= 0 && at + 2 <= _count)
        slot.storeBytes(of: v.bigEndian, toByteOffset: _offset + at, as: UInt16.self)
    }
    @inlinable func setU32(_ v: UInt32, _ at: Int) {
        assert(at >= 0 && at + 4 <= _count)
        slot.storeBytes(of: v.bigEndian, toByteOffset: _offset + at, as: UInt32.self)
    }
    @inlinable func setU64(_ v: UInt64, _ at: Int) {
        assert(at >= 0 && at + 8 <= _count)
        slot.storeBytes(of: v.bigEndian, toByteOffset: _offset + at, as: UInt64.self)
    }
    @inlinable func ipv6(_ at: Int) -> IPv6Address { IPv6Address(high: u64(at), low: u64(at + 8)) }
    @inlinable func setIPv6(_ a: IPv6Address, _ at: Int) { setU64(a.high, at); setU64(a.low, at + 8) }

    /// One's complement sum (folded, network order, not complemented) of `length` bytes at `at`.
    @inlinable func onesSum(_ at: Int, _ length: Int) -> UInt16 {
        assert(at >= 0 && length >= 0 && at + length <= _count)
        return InternetChecksum.sum(UnsafeRawBufferPointer(start: slot + _offset + at, count: length))
    }

    // ---- growing and shrinking ---------------------------------------------------------------

    /// Grows the packet by `n` bytes at the front, into the headroom. The new bytes are not
    /// initialized by this call (they hold whatever the slot held).
    @inlinable
    public mutating func growFront(by n: Int) throws(PacketError) {
        guard n >= 0, n <= headroom else { throw .noHeadroom(needed: n, available: headroom) }
        _offset -= n
        _count += n
    }

    /// Removes `n` bytes from the front; they become headroom.
    @inlinable
    public mutating func shrinkFront(by n: Int) throws(PacketError) {
        guard n >= 0, n <= _count else { throw .lengthOutOfRange(requested: n, available: _count) }
        _offset += n
        _count -= n
    }

    /// Grows the packet by `n` bytes at the end, into the tailroom (new bytes not initialized).
    @inlinable
    public mutating func growBack(by n: Int) throws(PacketError) {
        guard n >= 0, n <= tailroom else { throw .noTailroom(needed: n, available: tailroom) }
        _count += n
    }

    /// Removes `n` bytes from the end; they become tailroom.
    @inlinable
    public mutating func shrinkBack(by n: Int) throws(PacketError) {
        guard n >= 0, n <= _count else { throw .lengthOutOfRange(requested: n, available: _count) }
        _count -= n
    }

    /// Opens a gap of `n` bytes at `position` (0...count), moving the smaller side of the packet:
    /// the bytes before `position` slide into the headroom, or the bytes after it into the
    /// tailroom. When only one side has room, that side moves. The gap's contents are not
    /// initialized by this call.
    public mutating func insertGap(count n: Int, at position: Int) throws(PacketError) {
        guard n >= 0, position >= 0, position <= _count else {
            throw .outOfBounds(offset: position, length: n, packetLength: _count)
        }
        if n == 0 { return }
        let front = position
        let back = _count - position
        let frontFits = headroom >= n
        let backFits = tailroom >= n
        let start = slot + _offset
        if frontFits && (front <= back || !backFits) {
            if front > 0 { memmove(start - n, start, front) }
            _offset -= n
        } else if backFits {
            if back > 0 { memmove(start + position + n, start + position, back) }
        } else {
            throw .noRoom(needed: n, headroom: headroom, tailroom: tailroom)
        }
        _count += n
    }

    /// Removes `n` bytes at `position`, closing the gap by moving the smaller side (the front
    /// part toward the end, which grows the headroom, or the back part toward the front).
    public mutating func removeBytes(count n: Int, at position: Int) throws(PacketError) {
        guard n >= 0, position >= 0, position <= _count, n <= _count - position else {
            throw .outOfBounds(offset: position, length: n, packetLength: _count)
        }
        if n == 0 { return }
        let front = position
        let back = _count - position - n
        let start = slot + _offset
        if front <= back {
            if front > 0 { memmove(start + n, start, front) }
            _offset += n
        } else if back > 0 {
            memmove(start + position, start + position + n, back)
        }
        _count -= n
    }
}

/// An owned, 64-byte aligned slot for one packet, for in-memory links, tests and benchmarks
/// (the data plane uses its I/O layer's slabs instead). Keep the slot alive (for example with
/// `withExtendedLifetime`) for as long as a `PacketBuffer` made from it is in use.
public final class PacketSlot {
    /// The slot bytes, zero-filled at creation.
    public let memory: UnsafeMutableRawBufferPointer

    /// Allocates `capacity` bytes.
    public init(capacity: Int) {
        memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(capacity, 1), alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { memory.deallocate() }

    /// A packet view of `count` bytes placed `headroom` bytes into the slot.
    public func packet(headroom: Int, count: Int) throws(PacketError) -> PacketBuffer {
        try PacketBuffer(slot: memory, offset: headroom, count: count)
    }

    /// Copies `bytes` into the slot `headroom` bytes in and returns a view of them.
    public func packet(headroom: Int, copying bytes: [UInt8]) throws(PacketError) -> PacketBuffer {
        let p = try PacketBuffer(slot: memory, offset: headroom, count: bytes.count)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { (memory.baseAddress! + headroom).copyMemory(from: s, byteCount: src.count) }
        }
        return p
    }
}
