// PacketBatch: a slab of packet slots allocated once, filled by `TunQueue.read(into:)` and
// drained by `TunQueue.write(_:)`.
//
// Slot layout (every slot starts on a 64-byte boundary; `slotSize` is a multiple of 64):
//
//   |<-------- headroom -------->|<------ maxPacketSize ------>|<-- tailroom -->|pad|
//   ^ slot start (64-aligned)    ^ packet as read (data offset = headroom)
//
// Each slot has a data offset and a length, so a consumer can grow a packet in place: push
// headers into the headroom (`prepend`), add padding/IV/MAC into the tailroom (`append`),
// or strip headers (`removeFirst`/`removeLast`). Nothing is copied or reallocated.
//
// Lifetime: every view returned by this type (`unsafePacket(at:)`, `unsafeSlot(at:)`, the
// buffers from `prepend`/`append`) points into the slab. It stays valid until the next
// `read(into:)` into this batch, the next change of that slot's offset/length, or the end of
// the batch's life — whichever comes first. Do not keep it longer, and do not hand it to
// another thread while the owner may still use the batch.
//
// Ownership: a batch is noncopyable and not Sendable. One data-plane thread owns a queue and
// its batches; nothing here is shared or locked. Accessors are @inlinable and check bounds
// with preconditions only (no allocation, no logging).

/// A preallocated, 64-byte-aligned set of packet slots with headroom and tailroom.
public struct PacketBatch: ~Copyable {
    /// Alignment of the slab and of every slot.
    public static let alignment = 64
    /// Bytes reserved per slot for a virtio-net header (10 used), kept outside the slot.
    @usableFromInline static let virtioStride = 16

    /// Number of slots.
    public let capacity: Int
    /// Bytes in front of the packet as read, free for headers to be pushed in place.
    public let headroom: Int
    /// Largest packet a read accepts (longer ones are dropped and counted by the queue).
    public let maxPacketSize: Int
    /// Bytes reserved behind a maximum-size packet.
    public let tailroom: Int
    /// Distance between slot starts: headroom + maxPacketSize + tailroom (at least 1)
    /// rounded up to 64.
    public let slotSize: Int

    @usableFromInline let slab: UnsafeMutableRawPointer
    /// Per slot: data offset (from the slot start) and length.
    @usableFromInline let offsets: UnsafeMutablePointer<Int32>
    @usableFromInline let lengths: UnsafeMutablePointer<Int32>
    /// Per slot: virtio-net header (`virtioStride` bytes each).
    @usableFromInline let virtio: UnsafeMutableRawPointer
    @usableFromInline var _count: Int

    /// Allocates `capacity` slots. All sizes are in bytes.
    /// - Parameters:
    ///   - capacity: slots, 1...4096 (128 is a good data-plane batch).
    ///   - maxPacketSize: largest packet to read, 1...65536: at least the device MTU, and
    ///     65536 when segmentation offloads are on (the kernel then hands over 64 KiB packets).
    ///   - headroom: free bytes in front of each packet (default 128).
    ///   - tailroom: free bytes behind a maximum-size packet (default 64).
    public init(capacity: Int = 128, maxPacketSize: Int = 1500, headroom: Int = 128, tailroom: Int = 64) {
        precondition((1...4096).contains(capacity), "PacketBatch capacity must be 1...4096")
        precondition((1...65536).contains(maxPacketSize), "PacketBatch maxPacketSize must be 1...65536")
        precondition((0...4096).contains(headroom) && (0...4096).contains(tailroom), "PacketBatch head/tailroom must be 0...4096")
        let a = Self.alignment
        // At least one byte behind maxPacketSize: reads ask for maxPacketSize + 1 bytes so
        // that a packet the kernel truncated is recognised (and dropped) instead of passed on.
        let stride = (headroom + maxPacketSize + Swift.max(tailroom, 1) + a - 1) / a * a
        self.capacity = capacity
        self.headroom = headroom
        self.maxPacketSize = maxPacketSize
        self.tailroom = tailroom
        self.slotSize = stride
        self.slab = UnsafeMutableRawPointer.allocate(byteCount: stride * capacity, alignment: a)
        self.slab.initializeMemory(as: UInt8.self, repeating: 0, count: stride * capacity)
        self.offsets = .allocate(capacity: capacity)
        self.offsets.initialize(repeating: Int32(headroom), count: capacity)
        self.lengths = .allocate(capacity: capacity)
        self.lengths.initialize(repeating: 0, count: capacity)
        self.virtio = UnsafeMutableRawPointer.allocate(byteCount: Self.virtioStride * capacity, alignment: a)
        self.virtio.initializeMemory(as: UInt8.self, repeating: 0, count: Self.virtioStride * capacity)
        self._count = 0
    }

    deinit {
        slab.deallocate()
        offsets.deallocate()
        lengths.deallocate()
        virtio.deallocate()
    }

    /// Number of valid packets, slots `0..<count`. A read sets it; before a write, set it to
    /// the number of slots to send (each slot's offset/length say what to send).
    @inlinable public var count: Int {
        get { _count }
        set {
            precondition(newValue >= 0 && newValue <= capacity, "PacketBatch count out of range")
            _count = newValue
        }
    }

    /// Marks the batch empty and puts every slot back to offset `headroom`, length 0.
    @inlinable public mutating func removeAll() {
        _count = 0
        for i in 0..<capacity {
            offsets[i] = Int32(headroom)
            lengths[i] = 0
        }
    }

    // ---- slot geometry ----------------------------------------------------------------

    /// Offset of the packet's first byte from the start of slot `i`.
    @inlinable public func dataOffset(at i: Int) -> Int {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        return Int(offsets[i])
    }

    /// Length of the packet in slot `i`.
    @inlinable public func length(at i: Int) -> Int {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        return Int(lengths[i])
    }

    /// Free bytes in front of the packet in slot `i` (how much `prepend` may add).
    @inlinable public func availableHeadroom(at i: Int) -> Int { dataOffset(at: i) }

    /// Free bytes behind the packet in slot `i` (how much `append` may add).
    @inlinable public func availableTailroom(at i: Int) -> Int { slotSize - dataOffset(at: i) - length(at: i) }

    /// Sets the packet of slot `i` to `length` bytes starting `offset` bytes into the slot.
    @inlinable public mutating func setPacket(at i: Int, offset: Int, length: Int) {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        precondition(offset >= 0 && length >= 0 && offset + length <= slotSize, "packet does not fit in its slot")
        offsets[i] = Int32(offset)
        lengths[i] = Int32(length)
    }

    // ---- raw views (see the lifetime rule at the top of this file) -------------------

    /// The packet bytes of slot `i`: `length(at: i)` bytes at `dataOffset(at: i)`.
    @inlinable public func unsafePacket(at i: Int) -> UnsafeMutableRawBufferPointer {
        let off = dataOffset(at: i)
        return UnsafeMutableRawBufferPointer(start: slab + i * slotSize + off, count: Int(lengths[i]))
    }

    /// The whole slot `i` (`slotSize` bytes, 64-byte aligned), headroom and tailroom included.
    @inlinable public func unsafeSlot(at i: Int) -> UnsafeMutableRawBufferPointer {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        return UnsafeMutableRawBufferPointer(start: slab + i * slotSize, count: slotSize)
    }

    /// Grows the packet of slot `i` by `n` bytes at the front (into the headroom) and
    /// returns those `n` new bytes, for a header to be written there.
    @inlinable @discardableResult
    public mutating func prepend(_ n: Int, at i: Int) -> UnsafeMutableRawBufferPointer {
        let off = dataOffset(at: i)
        precondition(n >= 0 && n <= off, "prepend exceeds the headroom")
        offsets[i] = Int32(off - n)
        lengths[i] += Int32(n)
        return UnsafeMutableRawBufferPointer(start: slab + i * slotSize + off - n, count: n)
    }

    /// Grows the packet of slot `i` by `n` bytes at the end (into the tailroom) and returns
    /// those `n` new bytes, for padding or a trailer to be written there.
    @inlinable @discardableResult
    public mutating func append(_ n: Int, at i: Int) -> UnsafeMutableRawBufferPointer {
        let end = dataOffset(at: i) + length(at: i)
        precondition(n >= 0 && end + n <= slotSize, "append exceeds the tailroom")
        lengths[i] += Int32(n)
        return UnsafeMutableRawBufferPointer(start: slab + i * slotSize + end, count: n)
    }

    /// Drops `n` bytes from the front of the packet of slot `i` (the headroom grows).
    @inlinable public mutating func removeFirst(_ n: Int, at i: Int) {
        precondition(n >= 0 && n <= length(at: i), "removeFirst exceeds the packet")
        offsets[i] += Int32(n)
        lengths[i] -= Int32(n)
    }

    /// Drops `n` bytes from the end of the packet of slot `i` (the tailroom grows).
    @inlinable public mutating func removeLast(_ n: Int, at i: Int) {
        precondition(n >= 0 && n <= length(at: i), "removeLast exceeds the packet")
        lengths[i] -= Int32(n)
    }

    // ---- virtio-net header -------------------------------------------------------------

    /// The virtio-net header of slot `i`: as read from a queue opened with `virtioHeader`,
    /// and what a write to such a queue sends (all zero, "no offload", unless set).
    @inlinable public func virtioHeader(at i: Int) -> VirtioNetHeader {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        return VirtioNetHeader(UnsafeRawBufferPointer(start: virtio + i * Self.virtioStride, count: VirtioNetHeader.size))
    }

    /// Sets the virtio-net header that a write of slot `i` sends.
    @inlinable public mutating func setVirtioHeader(_ header: VirtioNetHeader, at i: Int) {
        precondition(i >= 0 && i < capacity, "slot index out of range")
        header.encode(into: UnsafeMutableRawBufferPointer(start: virtio + i * Self.virtioStride, count: VirtioNetHeader.size))
    }

    // ---- for TunQueue --------------------------------------------------------------------

    /// Start of slot `i`'s read area (slot start + headroom).
    @usableFromInline func readPointer(at i: Int) -> UnsafeMutableRawPointer { slab + i * slotSize + headroom }
    @usableFromInline func virtioPointer(at i: Int) -> UnsafeMutableRawPointer { virtio + i * Self.virtioStride }
    @usableFromInline func packetPointer(at i: Int) -> UnsafeMutableRawPointer { slab + i * slotSize + Int(offsets[i]) }
}
