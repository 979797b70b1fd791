import Sockets

/// Whether the traced program's TCP connections can still put packets on the wire after it exited.
///
/// After the program is gone its kernel may still send: the ACK of its FIN, the peer's FIN and the last ACK, a
/// retransmission. Those belong in the trace, so the capture goes on until the wire is quiet; but once every
/// connection the program had is in TIME_WAIT or gone, on both ends where the peer is on this host, nothing more
/// is coming and the wait can end at once. Any other state (a handshake, data or a FIN not yet acknowledged, a
/// peer that has not closed, a descriptor a child still holds) keeps the quiet-wire wait.
public struct TraceSettling: Sendable {
    /// (local, remote) of each traced TCP socket, and the same pair reversed for a peer on this host.
    let ends: Set<Pair>
    let families: (v4: Bool, v6: Bool)

    struct Pair: Hashable, Sendable {
        var local: SocketAddress
        var remote: SocketAddress
    }

    public init(_ sockets: [UInt64: SocketRecord]) {
        var ends: Set<Pair> = []
        var v4 = false
        var v6 = false
        for s in sockets.values where s.isTCP && !s.listening {
            guard let local = s.local, let remote = s.remote, local.port != 0, remote.port != 0 else { continue }
            ends.insert(Pair(local: local, remote: remote))
            ends.insert(Pair(local: remote, remote: local))
            if local.ip.isIPv6 { v6 = true } else { v4 = true }
        }
        self.ends = ends
        families = (v4, v6)
    }

    /// True when no row of the kernel's TCP table for these connections is in a state that still sends.
    public func settled() -> Bool {
        var rows: [KernelTCPTable.Entry] = []
        if families.v4 { rows += KernelTCPTable.entries("/proc/net/tcp") }
        if families.v6 { rows += KernelTCPTable.entries("/proc/net/tcp6") }
        for row in rows where ends.contains(Pair(local: row.local, remote: row.remote)) {
            switch row.state {
            case .timeWait, .closed: continue
            default: return false
            }
        }
        return true
    }
}
