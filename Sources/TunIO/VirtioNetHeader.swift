// The 10-byte virtio-net header (struct virtio_net_hdr, include/uapi/linux/virtio_net.h)
// that precedes every packet on a TUN opened with IFF_VNET_HDR, and the Internet checksum
// needed to finish a packet that arrives with a partial checksum.

/// A parsed virtio-net header. Fields are in host byte order; on the wire the kernel uses
/// the host's byte order too (little-endian hosts; TUNSETVNETLE/BE are not used by TunIO).
public struct VirtioNetHeader: Sendable, Equatable {
    /// Size on the wire.
    public static let size = 10

    /// `flags` bit: the checksum is partial; sum from `checksumStart` to the end and store
    /// the result at `checksumStart + checksumOffset` (see `completeChecksum(in:)`).
    public static let flagNeedsChecksum: UInt8 = 1
    /// `flags` bit: the checksum was already validated.
    public static let flagDataValid: UInt8 = 2

    /// Segmentation type of a large packet (`gsoType`, without the ECN bit).
    public enum GSOType: UInt8, Sendable {
        case none = 0, tcpv4 = 1, udp = 3, tcpv6 = 4, udpL4 = 5
    }
    /// `gsoType` bit: TCP with ECN (CWR) handling.
    public static let gsoECN: UInt8 = 0x80

    public var flags: UInt8
    /// Raw gso_type byte; see `gso`.
    public var gsoType: UInt8
    /// Length of the headers to copy into every segment (IP + transport).
    public var headerLength: UInt16
    /// Payload bytes per segment when `gso` is not `.none`.
    public var gsoSize: UInt16
    /// Where checksumming starts, from the first byte of the IP packet.
    public var checksumStart: UInt16
    /// Where to store the checksum, from `checksumStart`.
    public var checksumOffset: UInt16

    public init(
        flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
        checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Parses the first 10 bytes of `bytes` (which must hold at least 10).
    @inlinable public init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size, "virtio-net header needs 10 bytes")
        flags = bytes[0]
        gsoType = bytes[1]
        headerLength = bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    /// Writes the header into the first 10 bytes of `bytes`.
    @inlinable public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size, "virtio-net header needs 10 bytes")
        bytes[0] = flags
        bytes[1] = gsoType
        bytes.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        bytes.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        bytes.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
    }

    /// The segmentation type, or nil for a value this code does not know.
    public var gso: GSOType? { GSOType(rawValue: gsoType & ~Self.gsoECN) }

    /// True if the packet's transport checksum is partial.
    public var needsChecksum: Bool { flags & Self.flagNeedsChecksum != 0 }

    /// Finishes a partial checksum (`needsChecksum`) in `packet`, the IP packet this header
    /// came with, and returns true; returns false if the header's offsets do not fit the
    /// packet (then nothing is written). Does nothing and returns true without the flag.
    /// The kernel leaves the pseudo-header sum in the checksum field, so summing from
    /// `checksumStart` to the end covers pseudo-header, transport header and payload.
    public func completeChecksum(in packet: UnsafeMutableRawBufferPointer) -> Bool {
        guard needsChecksum else { return true }
        let start = Int(checksumStart)
        let field = start + Int(checksumOffset)
        guard start <= packet.count, field + 2 <= packet.count else { return false }
        let sum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: packet[start...]))
        var value = InternetChecksum.finish(sum)
        // UDP sends a computed 0 as 0xffff (RFC 768); for TCP both encode the same sum.
        if value == 0 { value = 0xffff }
        packet.storeBytes(of: value.bigEndian, toByteOffset: field, as: UInt16.self)
        return true
    }
}

/// The Internet checksum (RFC 1071), for IP headers and transport checksums.
public enum InternetChecksum {
    /// Adds the 16-bit big-endian words of `bytes` (an odd last byte is padded with zero) to
    /// `initial`. Chain calls to cover several pieces (e.g. pseudo-header, then segment);
    /// every piece but the last must have even length.
    @inlinable public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var s = initial
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            s &+= UInt64(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
            i += 2
        }
        if i < n { s &+= UInt64(UInt16(bytes[i]) << 8) }
        return s
    }

    /// Folds a sum to 16 bits and complements it: the value to store (host order).
    @inlinable public static func finish(_ sum: UInt64) -> UInt16 {
        var s = sum
        while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
        return ~UInt16(s)
    }

    /// The checksum of `bytes` in one step (host order).
    @inlinable public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 { finish(sum(bytes)) }
}
