import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// The side that closes first ends in TIME_WAIT; a server restarted on the port needs SO_REUSEADDR.
    public static let timeWait = LabScenario(
        name: "time-wait",
        summary: "which side ends in TIME_WAIT and why; bind fails with EADDRINUSE, then works with SO_REUSEADDR",
        summaryJa: "TIME_WAIT になるのはどちらか、その理由。bind が EADDRINUSE で失敗し、SO_REUSEADDR で成功"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        try lab.require(
            "server", "close",
            note: LabText(
                "the server closes first (active close)", ja: "サーバーが先に閉じる (アクティブクローズ)")
        ) { () throws(Errno) in try connection.close() }
        try lab.require("client", "close") { () throws(Errno) in try client.close() }
        lab.note(
            LabText(
                "the active closer waits in TIME_WAIT (60 s on Linux) to resend the last ACK if the FIN comes again and"
                    + " to let old segments die; the passive closer is done",
                ja: "先に閉じた側は TIME_WAIT で待つ (Linux では 60 秒): FIN が再送されたら最後の ACK を送り直し、"
                    + "古いセグメントが消えるのを待つ。後から閉じた側はすぐ終わる"))
        try lab.require("server", "close", [("socket", .string("listening"))]) { () throws(Errno) in
            try listener.close()
        }
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let plain = try lab.require("server", "socket", result: { Int($0.fileDescriptor) }) { () throws(Errno) in
            try Socket(family: family, type: .stream)
        }
        lab.step(
            "server", "bind", [("address", config.server.argument)],
            note: LabText(
                "without SO_REUSEADDR the port is still taken by the connection in TIME_WAIT",
                ja: "SO_REUSEADDR なしでは、TIME_WAIT の接続がまだポートを使っている")
        ) { () throws(Errno) in try plain.bind(to: config.server) }
        lab.closeQuietly("server", plain)
        let reusing = try lab.require("server", "socket", result: { Int($0.fileDescriptor) }) { () throws(Errno) in
            try Socket(family: family, type: .stream)
        }
        try lab.require("server", "setsockopt", [("option", .string("SO_REUSEADDR")), ("value", .int(1))]) {
            () throws(Errno) in try reusing.setReuseAddress(true)
        }
        lab.step(
            "server", "bind", [("address", config.server.argument)],
            note: LabText(
                "with SO_REUSEADDR the bind succeeds despite TIME_WAIT",
                ja: "SO_REUSEADDR があれば TIME_WAIT があっても bind できる")
        ) { () throws(Errno) in try reusing.bind(to: config.server) }
        lab.closeQuietly("server", reusing)
        return (config.server, clientAddress)
    }
}
