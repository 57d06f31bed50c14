// rtnetlink for svrd: links, addresses, routes and policy rules, each call one request that
// waits for the kernel's ACK (so a returned call has taken effect) or throws a NetlinkError
// with the operation, errno and the kernel's extended-ack text.

/// A NETLINK_ROUTE socket with typed operations. Control plane only: one thread at a time
/// (the socket belongs to the network namespace of the thread that created it).
public final class RouteNetlink {
    public let socket: NetlinkSocket

    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    public init() throws(NetlinkError) {
        socket = try NetlinkSocket(.route)
    }

    /// Sends `request` and waits for its ACK; `handler` sees the data messages of a GET or dump.
    public func perform(
        _ request: RouteRequest, handler: ((NetlinkReplyMessage) throws(NetlinkError) -> Void)? = nil
    ) throws(NetlinkError) {
        var message = request.message()
        try socket.request(&message, operation: request.description, handler: handler)
    }

    /// Runs a GET or dump and collects what `parse` makes of each reply message.
    private func collect<T>(_ request: RouteRequest, _ parse: @escaping (NetlinkReplyMessage) -> T?) throws(NetlinkError) -> [T] {
        var out: [T] = []
        try perform(request) { message in
            if let value = parse(message) { out.append(value) }
        }
        return out
    }

    // ---- links ---------------------------------------------------------------------------------

    /// The link called `name`; throws ENODEV (`isNotFound`) when there is none.
    public func link(named name: String) throws(NetlinkError) -> Link {
        guard let link = try collect(.getLink(name: name), Link.init).first else {
            throw NetlinkError(operation: RouteRequest.getLink(name: name).description, errno: 0,
                               detail: "the kernel sent no link")
        }
        return link
    }

    /// The interface index of `name` (RTM_GETLINK).
    public func linkIndex(named name: String) throws(NetlinkError) -> Int32 {
        try link(named: name).index
    }

    public func links() throws(NetlinkError) -> [Link] {
        try collect(.dumpLinks, Link.init)
    }

    /// Creates a dummy link or a veth pair (down; set it up with `setLink`). EEXIST if taken.
    public func createLink(named name: String, kind: LinkKind) throws(NetlinkError) {
        try perform(.createLink(name: name, kind: kind))
    }

    public func setLink(_ index: Int32, up: Bool) throws(NetlinkError) {
        try perform(.setLink(index: index, up: up, mtu: nil))
    }

    public func setLink(_ index: Int32, mtu: UInt32) throws(NetlinkError) {
        try perform(.setLink(index: index, up: nil, mtu: mtu))
    }

    /// Deletes a link (a veth pair goes with either end).
    public func deleteLink(_ index: Int32) throws(NetlinkError) {
        try perform(.deleteLink(index: index))
    }

    // ---- addresses -----------------------------------------------------------------------------

    /// Adds `prefix` (the address with its prefix length, e.g. 192.0.2.1/24) to a link. The
    /// kernel also adds the prefix route, as for `ip addr add`.
    public func addAddress(_ prefix: NetlinkPrefix, interfaceIndex: Int32) throws(NetlinkError) {
        try perform(.addAddress(prefix, interfaceIndex: interfaceIndex))
    }

    public func deleteAddress(_ prefix: NetlinkPrefix, interfaceIndex: Int32) throws(NetlinkError) {
        try perform(.deleteAddress(prefix, interfaceIndex: interfaceIndex))
    }

    /// The addresses of one link (or of all links when `interfaceIndex` is nil).
    public func addresses(interfaceIndex: Int32? = nil, family: AddressFamily? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        try collect(.dumpAddresses(family)) { message in
            InterfaceAddress(message).flatMap { interfaceIndex == nil || $0.interfaceIndex == interfaceIndex ? $0 : nil }
        }
    }

    // ---- routes --------------------------------------------------------------------------------

    /// Adds a route; EEXIST when the same destination/table/metric exists (use `replaceRoute`).
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try perform(.addRoute(route))
    }

    public func replaceRoute(_ route: Route) throws(NetlinkError) {
        try perform(.replaceRoute(route))
    }

    /// Deletes the route matching `route`'s destination, table and whichever of gateway,
    /// interface and metric it sets. ESRCH (`isNotFound`) when none matches.
    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try perform(.deleteRoute(route))
    }

    /// The routes of one table (both families unless `family` is given). Cached clones are
    /// left out.
    public func routes(table: UInt32 = RouteTable.main, family: AddressFamily? = nil) throws(NetlinkError) -> [Route] {
        var out: [Route] = []
        for f in family.map({ [$0] }) ?? [.ipv4, .ipv6] {
            out += try collect(.dumpRoutes(f)) { message in
                Route(message).flatMap { $0.table == table ? $0 : nil }
            }
        }
        return out
    }

    /// Deletes every route of `table` (both families unless `family` is given), as svrd does
    /// with the tables it owns when it starts and stops. Routes that vanish meanwhile are not
    /// an error. Returns how many routes it deleted.
    @discardableResult
    public func flushRoutes(table: UInt32, family: AddressFamily? = nil) throws(NetlinkError) -> Int {
        var deleted = 0
        for route in try routes(table: table, family: family) {
            do {
                try deleteRoute(route)
                deleted += 1
            } catch where error.isNotFound {
                continue
            }
        }
        return deleted
    }

    // ---- rules ---------------------------------------------------------------------------------

    /// Adds a rule; EEXIST when an identical one exists.
    public func addRule(_ rule: RoutingRule) throws(NetlinkError) {
        try perform(.addRule(rule))
    }

    /// Deletes the first rule matching the selectors `rule` sets. ENOENT when none does.
    public func deleteRule(_ rule: RoutingRule) throws(NetlinkError) {
        try perform(.deleteRule(rule))
    }

    public func rules(family: AddressFamily) throws(NetlinkError) -> [RoutingRule] {
        try collect(.dumpRules(family), RoutingRule.init)
    }
}
