import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// Datagrams: no handshake and no FIN; a closed port answers with ICMP port unreachable.
    public static let udp = LabScenario(
        name: "udp",
        summary: "sendto/recvfrom datagrams: no handshake, no FIN; ICMP port unreachable for a closed port",
        summaryJa: "sendto/recvfrom によるデータグラム: ハンドシェイクも FIN もない。閉じたポートには ICMP ポート到達不能"
    ) { (lab, config) throws(LabError) in
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let familyName = family == .ipv6 ? "AF_INET6" : "AF_INET"
        let server = try lab.require(
            "server", "socket", [("family", .string(familyName)), ("type", .string("SOCK_DGRAM"))],
            result: { Int($0.fileDescriptor) }
        ) { () throws(Errno) in try Socket(family: family, type: .datagram) }
        lab.name("server", server)
        try lab.require("server", "bind", [("address", config.server.argument)]) { () throws(Errno) in
            try server.bind(to: config.server)
        }
        let client = try lab.require(
            "client", "socket", [("family", .string(familyName)), ("type", .string("SOCK_DGRAM"))],
            result: { Int($0.fileDescriptor) }
        ) { () throws(Errno) in try Socket(family: family, type: .datagram) }
        if config.clientNeedsBind {
            try lab.require("client", "bind", [("address", config.clientAddress.argument)]) { () throws(Errno) in
                try client.bind(to: config.clientAddress)
            }
        }
        let ping = Array("ping".utf8)
        try lab.require(
            "client", "sendto", [("data", dataArgument(ping)), ("address", config.server.argument)],
            note: LabText(
                "no connection is set up: the first packet already carries the data",
                ja: "接続の確立はない: 最初のパケットがもうデータを運ぶ"),
            result: { $0 }
        ) { () throws(Errno) in try client.sendTo(ping, to: config.server) }
        lab.name("client", client)
        let (_, from) = try lab.require("server", "recvfrom", [("bufsize", .int(2048))], result: { $0.0.count }) {
            () throws(Errno) in try server.recvFrom(max: 2048)
        }
        let pong = Array("pong".utf8)
        try lab.require(
            "server", "sendto", [("data", dataArgument(pong)), ("address", from.argument)], result: { $0 }
        ) { () throws(Errno) in try server.sendTo(pong, to: from) }
        try lab.require("client", "recvfrom", [("bufsize", .int(2048))], result: { $0.0.count }) {
            () throws(Errno) in try client.recvFrom(max: 2048)
        }
        let closed = SocketAddress(ip: config.server.ip, port: config.closedPort)
        try lab.require(
            "client", "connect", [("address", closed.argument)],
            note: LabText(
                "connect on a UDP socket sends nothing: it only fixes the peer, so errors can be reported back",
                ja: "UDP ソケットの connect は何も送らない: 宛先を固定し、エラーが返るようにするだけ")
        ) { () throws(Errno) in try client.connect(to: closed) }
        let knock = Array("anyone?".utf8)
        try lab.require(
            "client", "send", [("data", dataArgument(knock))],
            note: LabText(
                "nobody listens on \(closed): the server's kernel answers with ICMP port unreachable",
                ja: "\(closed) には誰もいない: サーバー側カーネルが ICMP ポート到達不能を返す"),
            result: { $0 }
        ) { () throws(Errno) in try client.send(knock) }
        lab.step(
            "client", "recv", [("bufsize", .int(2048))],
            note: LabText(
                "the ICMP error reaches the connected socket as ECONNREFUSED",
                ja: "ICMP エラーは接続済みソケットに ECONNREFUSED として届く"),
            result: { $0.count }
        ) { () throws(Errno) in try client.recv(max: 2048, flags: .dontWait) }
        let clientAddress = try? client.localAddress
        lab.closeQuietly("client", client)
        lab.closeQuietly("server", server)
        return (config.server, clientAddress)
    }
}
