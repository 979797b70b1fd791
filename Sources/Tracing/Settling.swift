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
/// socket: no table says whether an answer or an ICMP error is still on its way.
public struct TraceSettling: Sendable {
    /// (local, remote) of each traced TCP socket, and the same pair reversed for a peer on this host.
    let ends: Set<Pair>
    let hasUDP: Bool

    struct Pair: Hashable, Sendable {
        var local: SocketAddress
        var remote: SocketAddress
    }

    public init(_ sockets: [UInt64: SocketRecord]) {
        var ends: Set<Pair> = []
        for s in sockets.values where s.isTCP && !s.listening {
            guard let local = s.local, let remote = s.remote, local.port != 0, remote.port != 0 else { continue }
            ends.insert(Pair(local: local, remote: remote))
            ends.insert(Pair(local: remote, remote: local))
        }
        self.ends = ends
        hasUDP = sockets.values.contains { $0.isUDP }
    }

    /// The states in which a connection can still send by itself.
    static let sending: [TCPState] = [
        .established, .synSent, .synReceived, .finWait1, .finWait2, .closeWait, .lastAck, .closing, .newSynReceived,
    ]

    /// True when no socket of these connections is in a state that can still send (asked through sock_diag, which
    /// filters in the kernel: /proc/net/tcp after a busy minute lists tens of thousands of TIME_WAIT rows).
    public func settled() -> Bool {
        if hasUDP { return false }
        if ends.isEmpty { return true }
        guard let busy = SocketDiag.tcpSockets(inStates: Self.sending) else { return false }
        return !busy.contains { ends.contains(Pair(local: $0.local, remote: $0.remote)) }
    }
}
