import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// A SYN to a port with no listener: the kernel answers RST/ACK and connect fails with ECONNREFUSED.
    public static let refused = LabScenario(
        name: "refused",
        summary: "connect to a port nobody listens on → RST/ACK, ECONNREFUSED",
        summaryJa: "誰も待ち受けていないポートへ connect → RST/ACK、ECONNREFUSED"
    ) { (lab, config) throws(LabError) in
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let target = SocketAddress(ip: config.server.ip, port: config.closedPort)
        let client = try lab.require(
            "client", "socket",
            [
                ("family", .string(family == .ipv6 ? "AF_INET6" : "AF_INET")),
                ("type", .string("SOCK_STREAM")),
            ],
            result: { Int($0.fileDescriptor) }
        ) { () throws(Errno) in try Socket(family: family, type: .stream) }
        lab.watch("client", client)
        if config.clientNeedsBind {
            try lab.require("client", "bind", [("address", config.clientAddress.argument)]) { () throws(Errno) in
                try client.bind(to: config.clientAddress)
            }
        }
        lab.step(
            "client", "connect", [("address", target.argument)],
            note: LabText(
                "no socket listens on \(target): the server's kernel answers the SYN with RST/ACK",
                ja: "\(target) で待ち受けるソケットはない: サーバー側カーネルが SYN に RST/ACK で答える"),
            remote: target
        ) { () throws(Errno) in try client.connect(to: target, timeout: .seconds(3)) }
        let clientAddress = try? client.localAddress
        lab.closeQuietly("client", client)
        return (target, clientAddress)
    }
}
