// What to ask the kernel for when opening a TUN device.

/// Segmentation and checksum offloads a TUN device can accept from the kernel
/// (TUNSETOFFLOAD). They only make sense with a virtio-net header, which carries the
/// per-packet checksum/segmentation instructions.
public struct TunOffloads: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Packets may arrive with a partial checksum (`VirtioNetHeader.needsChecksum`).
    public static let checksum = TunOffloads(rawValue: 0x01)
    /// TCP segmentation offload over IPv4 (needs `.checksum`).
    public static let tso4 = TunOffloads(rawValue: 0x02)
    /// TCP segmentation offload over IPv6 (needs `.checksum`).
    public static let tso6 = TunOffloads(rawValue: 0x04)
    /// TSO with ECN (needs a TSO flag).
    public static let tsoECN = TunOffloads(rawValue: 0x08)
    /// UDP fragmentation offload (legacy; newer kernels may refuse it).
    public static let ufo = TunOffloads(rawValue: 0x10)
    /// UDP segmentation offload over IPv4 (Linux 6.2+, needs `.checksum`).
    public static let uso4 = TunOffloads(rawValue: 0x20)
    /// UDP segmentation offload over IPv6 (Linux 6.2+, needs `.checksum`).
    public static let uso6 = TunOffloads(rawValue: 0x40)

    /// Everything that needs `.checksum` to be useful.
    public static let segmentation: TunOffloads = [.tso4, .tso6, .tsoECN, .ufo, .uso4, .uso6]

    public var description: String {
        let names: [(TunOffloads, String)] = [
            (.checksum, "csum"), (.tso4, "tso4"), (.tso6, "tso6"), (.tsoECN, "tso-ecn"),
            (.ufo, "ufo"), (.uso4, "uso4"), (.uso6, "uso6"),
        ]
        let on = names.filter { contains($0.0) }.map(\.1)
        return "[" + on.joined(separator: ",") + "]"
    }
}

/// How to open a TUN device: always `IFF_TUN | IFF_NO_PI` (raw IP packets, no packet-info
/// prefix), plus the options below.
public struct TunConfiguration: Sendable, Equatable {
    /// Device name (1...15 bytes of printable ASCII, no `/`, `:` or space; `%d` lets the
    /// kernel pick a number). The device is created if missing, attached to otherwise.
    public var name: String
    /// The clone device to open. Tests point it elsewhere.
    public var clonePath: String
    /// Number of queues (fds) to open, 1...256. More than one implies `multiQueue`.
    public var queues: Int
    /// Open with `IFF_MULTI_QUEUE`, so that more fds can attach later (one per thread).
    public var multiQueue: Bool
    /// Open with `IFF_VNET_HDR`: every packet read or written is preceded by a 10-byte
    /// virtio-net header (kept apart from the packet in `PacketBatch`).
    public var virtioHeader: Bool
    /// Offloads to request with TUNSETOFFLOAD (needs `virtioHeader`; segmentation offloads
    /// need `.checksum`). `TunDevice.offloads` says what the kernel accepted.
    public var offloads: TunOffloads
    /// MTU to set once the device exists (SIOCSIFMTU), or nil to keep the kernel's (1500).
    public var mtu: Int?

    public init(
        name: String, clonePath: String = "/dev/net/tun", queues: Int = 1,
        multiQueue: Bool? = nil, virtioHeader: Bool = false, offloads: TunOffloads = [],
        mtu: Int? = nil
    ) {
        self.name = name
        self.clonePath = clonePath
        self.queues = queues
        self.multiQueue = multiQueue ?? (queues > 1)
        self.virtioHeader = virtioHeader
        self.offloads = offloads
        self.mtu = mtu
    }

    /// Checks everything that can be checked without the kernel.
    public func validate() throws(TunError) {
        try Self.validateName(name)
        func bad(_ detail: String) -> TunError {
            TunError(.invalidConfiguration, operation: "validate configuration", device: name, detail: detail)
        }
        guard (1...256).contains(queues) else { throw bad("queues must be 1...256, got \(queues)") }
        guard queues == 1 || multiQueue else { throw bad("\(queues) queues need multiQueue") }
        guard offloads.isEmpty || virtioHeader else { throw bad("offloads \(offloads) need virtioHeader") }
        guard offloads.isDisjoint(with: .segmentation) || offloads.contains(.checksum) else {
            throw bad("segmentation offloads \(offloads) need .checksum")
        }
        if let mtu, !(68...65535).contains(mtu) { throw bad("mtu must be 68...65535, got \(mtu)") }
        guard !clonePath.isEmpty, !clonePath.utf8.contains(0) else { throw bad("empty clone device path") }
    }

    /// Checks a device name the way the kernel's `dev_valid_name` does, and more strictly:
    /// 1...15 bytes, printable ASCII, no `/`, `:` or whitespace, not `.` or `..`.
    public static func validateName(_ name: String) throws(TunError) {
        func bad(_ detail: String) -> TunError {
            TunError(.invalidName, operation: "validate name", device: name, detail: detail)
        }
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw bad("empty name") }
        guard bytes.count <= 15 else { throw bad("\(bytes.count) bytes, at most 15 allowed") }
        guard name != ".", name != ".." else { throw bad("reserved name") }
        for b in bytes {
            guard b > 0x20, b < 0x7f else { throw bad("byte 0x\(String(b, radix: 16)) is not printable ASCII") }
            guard b != UInt8(ascii: "/"), b != UInt8(ascii: ":") else {
                throw bad("'\(Character(Unicode.Scalar(b)))' is not allowed")
            }
        }
    }
}
