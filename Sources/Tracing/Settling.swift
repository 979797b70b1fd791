import PacketWire
import Sockets
import SyscallTrace

/// Whether the traced program's TCP connections can still put packets on the wire after it exited.
///
/// After the program is gone its kernel may still send: the ACK of its FIN, the peer's FIN and the last ACK, a
/// retransmission. Those belong in the trace, so the capture goes on until the wire is quiet; but once every
/// connection the program had is in TIME_WAIT or gone, on both ends where the peer is on this host, nothing more
/// is coming and the wait can end at once. Any other state (a handshake, data or a FIN not yet acknowledged, a
/// peer that has not closed, a descriptor a child still holds) keeps the quiet-wire wait, and so does any UDP
/// socket: no table says whether an answer or an ICMP error is still on its way. Connections an engine saw
/// closed at both ends on the wire are settled without asking the kernel's socket table.
public struct TraceSettling: Sendable {
    /// (local, remote) of each traced TCP socket, and the same pair reversed for a peer on this host.
    let ends: Set<Pair>
    let hasUDP: Bool
    /// Every connection was seen closed at both ends on the wire.
    let closedOnTheWire: Bool

    struct Pair: Hashable, Sendable {
        var local: SocketAddress
        var remote: SocketAddress
    }

    /// `closedOnTheWire`: connections (one end, the other) the engine saw closed at both ends.
    public init(_ sockets: [UInt64: SocketRecord], closedOnTheWire: [(SocketAddress, SocketAddress)] = []) {
        var ends: Set<Pair> = []
        for s in sockets.values where s.isTCP && !s.listening {
            guard let local = s.local, let remote = s.remote, local.port != 0, remote.port != 0 else { continue }
            ends.insert(Pair(local: local, remote: remote))
            ends.insert(Pair(local: remote, remote: local))
        }
        self.ends = ends
        hasUDP = sockets.values.contains { $0.isUDP }
        var closed: Set<Pair> = []
        for (a, b) in closedOnTheWire {
            closed.insert(Pair(local: a, remote: b))
            closed.insert(Pair(local: b, remote: a))
        }
        self.closedOnTheWire = ends.isSubset(of: closed)
    }

    /// The states in which a connection can still send by itself.
    static let sending: [TCPState] = [
        .established, .synSent, .synReceived, .finWait1, .finWait2, .closeWait, .lastAck, .closing, .newSynReceived,
    ]

    /// True when no socket of these connections is in a state that can still send: each was seen closed on the
    /// wire, or sock_diag says so (it filters in the kernel: /proc/net/tcp after a busy minute lists tens of
    /// thousands of TIME_WAIT rows; the dump still walks them, ~14 ms with 66,000).
    public func settled() -> Bool {
        if hasUDP { return false }
        if closedOnTheWire { return true }
        guard let busy = SocketDiag.tcpSockets(inStates: Self.sending) else { return false }
        return !busy.contains { ends.contains(Pair(local: $0.local, remote: $0.remote)) }
    }
}
