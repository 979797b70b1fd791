import Glibc
import PacketWire
import Sockets
import SystemCalls
import Timeline

/// A lab scenario: a sequence of real socket calls that answers one question about TCP.
public struct LabScenario: Sendable {
    public var name: String
    public var summary: String
    public var summaryJa: String
    /// Changes the run's configuration before it starts (`ipv6` moves the seed to ::1).
    var prepare: @Sendable (inout LabConfiguration) -> Void = { _ in }
    let body:
        @Sendable (LabSession, LabConfiguration) throws(LabError) -> (server: SocketAddress, client: SocketAddress?)

    init(
        name: String, summary: String, summaryJa: String,
        prepare: @escaping @Sendable (inout LabConfiguration) -> Void = { _ in },
        body:
            @escaping @Sendable (LabSession, LabConfiguration) throws(LabError) -> (
                server: SocketAddress, client: SocketAddress?
            )
    ) {
        self.name = name
        self.summary = summary
        self.summaryJa = summaryJa
        self.prepare = prepare
        self.body = body
    }

    /// Every scenario, in the order `lab --list` shows them.
    public static let all: [LabScenario] = [
        .basic, .halfClose, .abort, .refused, .unreadClose, .bulk, .backlog, .nagle, .keepalive, .timeWait,
        .simultaneousClose, .udp, .ipv6,
    ]

    public static func named(_ name: String) -> LabScenario? { all.first { $0.name == name } }

    /// Runs the scenario for real (capturing unless the configuration says not to). With `hosts == .netns` it
    /// makes the two namespaces first and removes them before returning, whatever happens. With `.loopback` and
    /// loopback addresses it runs in a network namespace of its own when the kernel allows one (root), else on
    /// this host's loopback; the result's `placement` says which.
    public func run(_ configuration: LabConfiguration) throws(LabError) -> LabResult {
        var configuration = configuration
        prepare(&configuration)
        var twoHosts: LabNamespaces?
        var network: (any LabNetwork)?
        let placement: LabPlacement
        switch configuration.hosts {
        case .netns:
            let ns = try LabNamespaces()
            twoHosts = ns
            network = ns
            placement = .twoHosts
            let v6 = configuration.server.ip.isIPv6
            configuration.server.ip = v6 ? LabNamespaces.serverIPv6 : LabNamespaces.serverIP
            configuration.clientIP = v6 ? LabNamespaces.clientIPv6 : LabNamespaces.clientIP
            configuration.interface = ns.serverInterface
        case .host:
            placement = .hostByChoice
        case .loopback where configuration.fitsPrivateLoopback:
            switch PrivateLoopback.make() {
            case .success(let own):
                network = own
                placement = .privateLoopback
            case .failure(let error):
                placement = geteuid() != 0 ? .hostWithoutPrivilege : .hostRefused(error)
            }
        case .loopback:
            placement = .hostAddresses
        }
        defer { twoHosts?.remove() }
        let server = configuration.server
        let filter = LabScenario.captureFilter(
            server: server, closedPort: configuration.closedPort, clientIP: configuration.clientIP)
        let session = try LabSession(
            configuration: configuration, filter: filter, namespaces: network, placement: placement)
        let (s, c) = try body(session, configuration)
        var result = try session.finish(scenario: name, server: s, client: c)
        result.placement = placement
        return result
    }

    /// Only the two endpoints' traffic: the server's port (and the closed port next to it) between the two
    /// addresses, and ICMP between them.
    static func captureFilter(server: SocketAddress, closedPort: UInt16, clientIP: IPAddress) -> String {
        let s = server.ip.description
        let c = clientIP.description
        return "((tcp or udp) and host \(s) and (port \(server.port) or port \(closedPort)) and host \(c))"
            + " or ((icmp or icmp6) and host \(s) and host \(c))"
    }
}

extension LabScenario {
    /// The seed's steps up to an accepted connection: server socket (SO_REUSEADDR), bind, listen; client socket,
    /// connect; accept. Scenarios that start from an established connection share it.
    static func connectPair(
        _ lab: LabSession, _ config: LabConfiguration, backlog: Int32 = 2,
        clientSetup: ((Socket) throws(Errno) -> Void)? = nil, setupName: String? = nil
    ) throws(LabError) -> (listener: Socket, connection: Socket, client: Socket, clientAddress: SocketAddress?) {
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let familyName = family == .ipv6 ? "AF_INET6" : "AF_INET"
        let server = try lab.require(
            "server", "socket", [("family", .string(familyName)), ("type", .string("SOCK_STREAM"))],
            note: LabText(
                "SO_REUSEADDR is set too, so the lab can run again while an old connection is in TIME_WAIT",
                ja: "SO_REUSEADDR も設定: 古い接続が TIME_WAIT のままでもラボを再実行できるように"),
            result: { Int($0.fileDescriptor) }
        ) { () throws(Errno) in
            let s = try Socket(family: family, type: .stream)
            try s.setReuseAddress(true)
            return s
        }
        lab.watch("server", server)
        try lab.require(
            "server", "bind", [("address", config.server.argument)], local: config.server,
            hint: { lab.bindHint($0, config.server, actor: "server", reusing: true, option: "--server") }
        ) { () throws(Errno) in try server.bind(to: config.server) }
        try lab.require("server", "listen", [("backlog", .int(Int(backlog)))]) { () throws(Errno) in
            try server.listen(backlog: backlog)
        }
        let client = try lab.require(
            "client", "socket", [("family", .string(familyName)), ("type", .string("SOCK_STREAM"))],
            result: { Int($0.fileDescriptor) }
        ) { () throws(Errno) in try Socket(family: family, type: .stream) }
        lab.watch("client", client)
        if let clientSetup, let setupName {
            try lab.require("client", "setsockopt", [("option", .string(setupName))]) { () throws(Errno) in
                try clientSetup(client)
            }
        }
        if config.clientNeedsBind {
            try lab.require(
                "client", "bind", [("address", config.clientAddress.argument)],
                hint: { lab.bindHint($0, config.clientAddress, actor: "client", reusing: false, option: nil) }
            ) { () throws(Errno) in try client.bind(to: config.clientAddress) }
        }
        try lab.require(
            "client", "connect", [("address", config.server.argument)], remote: config.server
        ) { () throws(Errno) in try client.connect(to: config.server, timeout: .seconds(5)) }
        let clientAddress = try? client.localAddress
        let (connection, _) = try lab.require(
            "server", "accept", result: { Int($0.0.fileDescriptor) }
        ) { () throws(Errno) in try server.accept() }
        lab.watch("server", connection)
        return (server, connection, client, clientAddress)
    }

    /// The seed: the server's socket, bind, listen; the client's socket and connect; accept; sendall; the server's
    /// recv and send; the client's recv; the server's close, then the client's.
    public static let basic = LabScenario(
        name: "basic",
        summary: "the seed: connect → handshake, sendall → data, the server's close → FIN, then the client's",
        summaryJa: "元記事の実験: connect で3ウェイハンドシェイク、sendall でデータ、close で FIN"
    ) { (lab, config) throws(LabError) in
        let (server, connection, client, clientAddress) = try connectPair(lab, config)

        let message = Array(config.message.utf8)
        try lab.require(
            "client", "sendall", [("data", dataArgument(message))],
            result: { message.count }
        ) { () throws(Errno) in try client.sendAll(message) }

        let received = try lab.require(
            "server", "recv", [("bufsize", .int(config.receiveBufferSize))], result: { $0.count }
        ) { () throws(Errno) in try connection.recv(max: config.receiveBufferSize) }

        let shown = TextEscaper.preview(received, limit: 256)
        let reply = Array(SeedServer.reply(count: 1, byteCount: received.count, shownMessage: shown).utf8)
        try lab.require(
            "server", "send", [("data", dataArgument(reply))], result: { $0 }
        ) { () throws(Errno) in try connection.send(reply) }

        try lab.require(
            "client", "recv", [("bufsize", .int(config.receiveBufferSize))], result: { $0.count }
        ) { () throws(Errno) in try client.recv(max: config.receiveBufferSize) }

        try lab.require("server", "close") { () throws(Errno) in try connection.close() }
        try lab.require("client", "close") { () throws(Errno) in try client.close() }
        try? server.close()
        return (config.server, clientAddress)
    }
}

/// A call's data argument: its length and text.
func dataArgument(_ bytes: [UInt8]) -> ArgumentValue {
    .bytes(count: bytes.count, preview: TextEscaper.preview(bytes, limit: 256))
}
