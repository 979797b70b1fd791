import Glibc
import PacketWire
import Sockets

/// A closed loopback connection whose server side is left in TIME_WAIT by a listener without SO_REUSEADDR on `ip`,
/// as the seed's server.py leaves one: the server closes first. Returns the server's address and the client's.
public func leaveServerTimeWait(on ip: IPAddress = .loopbackV4) throws -> (server: SocketAddress, client: SocketAddress)
{
    let listener = try Socket(family: .ipv4, type: .stream)
    try listener.bind(to: SocketAddress(ip: ip, port: 0))
    try listener.listen(backlog: 1)
    let server = try listener.localAddress
    let client = try Socket(family: .ipv4, type: .stream)
    try client.connect(to: server, timeout: .seconds(5))
    let clientAddress = try client.localAddress
    let (accepted, _) = try listener.accept()
    try accepted.close()
    // The client's FIN must arrive after the server's is acknowledged, so the server's side (not the client's)
    // goes FIN_WAIT2 → TIME_WAIT.
    _ = try client.recv(max: 1)
    try client.close()
    try listener.close()
    return (server, clientAddress)
}

/// Waits (at most 2 s) until `address` is held by a TIME_WAIT socket, and returns what holds it (nil when
/// sock_diag cannot be asked).
public func holdersOnceInTimeWait(_ address: SocketAddress) -> [SocketDiag.PortHolder]? {
    let deadline = ContinuousClock.now + .seconds(2)
    while true {
        let holders = SocketDiag.holders(of: address)
        if holders?.contains(where: { $0.record.entry.state == .timeWait }) == true || ContinuousClock.now > deadline {
            return holders
        }
        usleep(5_000)
    }
}

/// Waits (at most `seconds`) until no TCP connection with `port` at either end can still send: every one is in
/// TIME_WAIT or gone (a listener on it does not count). True when that happened; for a test that must not act
/// (stop a tracer, read a capture) before a connection's last FIN and ACK were on the wire.
public func connectionsClosed(port: UInt16, within seconds: Double = 5) -> Bool {
    let open: [TCPState] = [.established, .synSent, .synReceived, .finWait1, .finWait2, .closeWait, .lastAck, .closing]
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if let sockets = SocketDiag.tcpSockets(inStates: open),
            !sockets.contains(where: { $0.local.port == port || $0.remote.port == port })
        {
            return true
        }
        usleep(5_000)
    }
    return false
}
