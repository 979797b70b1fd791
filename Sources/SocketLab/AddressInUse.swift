import PacketWire
import Sockets

/// The one line the lab adds when its `bind(2)` fails with EADDRINUSE: what holds the address, found with
/// sock_diag (a listening program, a socket of some process, or a connection in TIME_WAIT and for how long), and
/// what to do. Nothing is guessed: when sock_diag finds nothing or cannot be asked, the line says so.
public enum AddressInUse {
    /// The explanation, without a newline.
    /// - Parameters:
    ///   - address: the address the bind asked for.
    ///   - holders: what ``SocketDiag/holders(of:)`` found (nil: sock_diag could not be asked).
    ///   - reusing: whether the failed socket had SO_REUSEADDR. With it, a TIME_WAIT blocks the bind only when the
    ///     socket that left it had not set it (as the seed's server does not).
    ///   - placement: where the lab ran, for the advice.
    ///   - alternative: what to pass instead (`--server 127.0.0.2:49154`), or nil.
    public static func explanation(
        _ address: SocketAddress, holders: [SocketDiag.PortHolder]?, reusing: Bool, placement: LabPlacement,
        alternative: String?
    ) -> String {
        var advice: [String] = []
        let what: String
        if let holders {
            let live = holders.filter { $0.record.entry.state != .timeWait }
            let waiting = holders.filter { $0.record.entry.state == .timeWait }
            // A program holding the port is what to act on first; its TIME_WAITs, if any, come after it.
            if let holder = live.first(where: { $0.record.entry.state == .listen }) ?? live.first {
                what = "\(address) is taken: " + describe(holder, others: live.count - 1)
                advice.append(holder.processes.isEmpty ? "stop that program" : "stop it")
            } else if let longest = waiting.max(by: { $0.record.expires < $1.record.expires }) {
                let seconds = wholeSeconds(longest.record.expires)
                let entry = longest.record.entry
                let connection = "\(entry.local) ⇄ \(entry.remote)"
                what =
                    (waiting.count == 1
                        ? "\(address) is held by the TIME_WAIT of the connection \(connection) for another \(seconds) s"
                        : "\(address) is held by \(waiting.count) connections in TIME_WAIT (\(connection) and"
                            + " \(waiting.count - 1) more) for up to another \(seconds) s")
                    + (reusing
                        ? " (the program that closed it first had not set SO_REUSEADDR, as the seed's server.py does"
                            + " not)"
                        : "")
                advice.append("wait \(seconds) s")
            } else {
                what = "no TCP socket holds \(address) any more (it was freed just now); run again"
            }
        } else {
            what = "sock_diag could not be asked what holds \(address) (`ss -tanp 'sport = :\(address.port)'` shows it)"
        }
        switch placement {
        case .hostWithoutPrivilege:
            advice.append("run as root (the lab then runs in a network namespace of its own)")
        case .hostByChoice:
            advice.append("drop --hosts host (the lab then runs in a network namespace of its own)")
        default:
            break
        }
        if let alternative { advice.append("choose a free port: \(alternative)") }
        return what + (advice.isEmpty ? "" : "; " + list(advice))
    }

    /// What `holder` is: a program listening, or a socket of a program in some state; its owner when the process
    /// cannot be seen.
    static func describe(_ holder: SocketDiag.PortHolder, others: Int) -> String {
        let entry = holder.record.entry
        let owner =
            holder.processes.isEmpty
            ? "a process of user \(holder.record.uid) (not visible to this user)"
            : holder.processes.map { "\($0.command) (pid \($0.pid))" }.joined(separator: ", ")
        let role =
            entry.state == .listen
            ? "listens on \(entry.local)"
            : "has a socket on \(entry.local) in \(entry.state.name)"
                + (entry.remote.port == 0 ? "" : " with \(entry.remote)")
        return "\(owner) \(role)" + (others > 0 ? " (and \(others) more sockets on that port)" : "")
    }

    /// "a", "a or b", "a, b or c".
    static func list(_ items: [String]) -> String {
        guard items.count > 1, let last = items.last else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " or " + last
    }

    /// At least 1: a TIME_WAIT with 300 ms left is "1 s", not "0 s".
    static func wholeSeconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return max(1, seconds + (attoseconds > 0 ? 1 : 0))
    }

    /// A port near `address`'s where the lab's server and the closed port next to it (used by `refused` and `udp`)
    /// are both free on `address`'s IP, according to `records` (every TCP socket of the namespace); nil if none
    /// of the next hundred is.
    static func freePort(near address: SocketAddress, records: [SocketDiag.Record]) -> UInt16? {
        let taken = Set(
            records.filter { SocketDiag.sameOrWildcard($0.entry.local.ip, address.ip) }.map(\.entry.local.port))
        var port = Int(address.port) + 2
        while port < min(Int(address.port) + 102, Int(UInt16.max)) {
            if !taken.contains(UInt16(port)) && !taken.contains(UInt16(port + 1)) { return UInt16(port) }
            port += 2
        }
        return nil
    }
}
