// Small integer identifiers for tenants, services and LAN interfaces, and the name tables that
// map them back to configuration names. The data plane carries only the integers; names are
// for the control plane (`show sessions`, metadata TLVs).

/// A small integer that identifies a configured object (a dense index from 0).
public protocol SmallIdentifier: Hashable, Sendable, Comparable, CustomStringConvertible {
    var rawValue: UInt16 { get }
    init(rawValue: UInt16)
}

extension SmallIdentifier {
    public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
    public var description: String { "#\(rawValue)" }
    /// The identifier as an array index.
    @inlinable public var index: Int { Int(rawValue) }
}

/// A tenant (a named source population), as a dense index into the tenant name table.
public struct TenantID: SmallIdentifier {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
}

/// A service (a named destination with transports and an access policy).
public struct ServiceID: SmallIdentifier {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
}

/// A LAN interface as numbered by the engine (not necessarily the kernel ifindex).
public struct LANInterfaceID: SmallIdentifier {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
}

/// Names of identifiers, assigned densely in the order they are added.
public struct NameTable<ID: SmallIdentifier>: Sendable {
    public private(set) var names: [String] = []
    private var ids: [String: ID] = [:]

    public init() {}

    /// Builds a table where `names[i]` gets identifier `i`; nil if a name repeats or there are
    /// more than 65,536 names.
    public init?(_ names: [String]) {
        for n in names { guard add(n) != nil else { return nil } }
    }

    /// Adds `name` and returns its new identifier; nil if it is already present or the table is
    /// full.
    @discardableResult
    public mutating func add(_ name: String) -> ID? {
        guard ids[name] == nil, names.count <= Int(UInt16.max) else { return nil }
        let id = ID(rawValue: UInt16(names.count))
        names.append(name)
        ids[name] = id
        return id
    }

    public var count: Int { names.count }
    public func id(named name: String) -> ID? { ids[name] }
    public func name(of id: ID) -> String? { id.index < names.count ? names[id.index] : nil }
}
