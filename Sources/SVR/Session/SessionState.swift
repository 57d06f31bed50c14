// Session states, TCP tracking and per-state idle timeouts.
//
// TCP is followed loosely, the way a stateful router does (it sees both directions but does
// not check sequence numbers):
//
//   first packet SYN ─► synSent ─(reverse SYN+ACK)─► synReceived ─(forward ACK)─► established
//   FIN in one direction ─► finWait ─(FIN in the other direction)─► closed
//   RST in any state ─► reset
//   first packet without SYN (a flow picked up mid-stream, e.g. after failover) ─► established
//
// UDP, ICMP and other protocols have one state each and only an idle timeout.

// TCPFlags is defined with the packet views (Packet/HeaderViews.swift).

/// The state of a session.
public enum SessionState: UInt8, Sendable, CaseIterable {
    case tcpSynSent
    case tcpSynReceived
    case tcpEstablished
    /// A FIN was seen in one direction (`SessionInfo.finForward`/`finReverse` tell which).
    case tcpFinWait
    /// FINs were seen in both directions.
    case tcpClosed
    case tcpReset
    case udp
    case icmp
    /// Any other IP protocol.
    case other

    /// The state of a new session, from its protocol and first packet's TCP flags.
    public static func initial(proto: UInt8, tcpFlags: TCPFlags) -> SessionState {
        switch proto {
        case IPProtocolNumber.tcp:
            if tcpFlags.contains(.rst) { .tcpReset } else if tcpFlags.contains(.syn) { .tcpSynSent } else { .tcpEstablished }
        case IPProtocolNumber.udp: .udp
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6: .icmp
        default: .other
        }
    }
}

/// Idle timeouts per state, in seconds. A session expires when it has seen no packet for the
/// timeout of its current state.
public struct SessionTimeouts: Sendable, Equatable {
    public var tcpHandshake: UInt32 = 30
    public var tcpEstablished: UInt32 = 1800
    public var tcpHalfClosed: UInt32 = 120
    public var tcpClosed: UInt32 = 10
    public var tcpReset: UInt32 = 2
    public var udp: UInt32 = 180
    public var icmp: UInt32 = 30
    public var other: UInt32 = 180

    public init() {}

    public func timeout(for state: SessionState) -> UInt32 {
        switch state {
        case .tcpSynSent, .tcpSynReceived: tcpHandshake
        case .tcpEstablished: tcpEstablished
        case .tcpFinWait: tcpHalfClosed
        case .tcpClosed: tcpClosed
        case .tcpReset: tcpReset
        case .udp: udp
        case .icmp: icmp
        case .other: other
        }
    }

    /// The timeouts indexed by `SessionState.rawValue`.
    var table: [UInt32] { SessionState.allCases.map { timeout(for: $0) } }
}

/// The TCP transition for one packet. `fins` holds bit 0 = FIN seen forward, bit 1 = reverse.
@inline(__always)
func tcpTransition(_ s: SessionState, forward: Bool, flags: UInt8, fins: inout UInt8) -> SessionState {
    let f = TCPFlags(rawValue: flags)
    if f.contains(.rst) { return .tcpReset }
    switch s {
    case .tcpReset, .tcpClosed:
        return s
    case .tcpSynSent:
        if !forward && f.contains(.syn) && f.contains(.ack) { return .tcpSynReceived }
        if f.contains(.fin) { break }
        return s
    case .tcpSynReceived:
        if forward && f.contains(.ack) && !f.contains(.syn) && !f.contains(.fin) { return .tcpEstablished }
        if f.contains(.fin) { break }
        return s
    default:
        if !f.contains(.fin) { return s }
    }
    fins |= forward ? 1 : 2
    return fins == 3 ? .tcpClosed : .tcpFinWait
}
