import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// An idle connection with keep-alive after 1 s: the client's kernel probes, the server's kernel answers.
    public static let keepalive = LabScenario(
        name: "keepalive",
        summary: "an idle connection with SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1 → probes and their ACKs",
        summaryJa: "SO_KEEPALIVE、TCP_KEEPIDLE=1、TCP_KEEPINTVL=1 のアイドル接続 → キープアライブとその ACK"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(
            lab, config,
            clientSetup: { (s) throws(Errno) in try s.setKeepAlive(true, idle: 1, interval: 1, count: 3) },
            setupName: "SO_KEEPALIVE=1, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=3")
        lab.step(
            "client", "poll", [("events", .string("POLLIN")), ("timeout_ms", .int(2600))],
            note: LabText(
                "nobody sends: after 1 s idle the client's kernel sends a probe (one byte back in sequence space),"
                    + " the server's kernel ACKs it, and again every second",
                ja: "誰も送信しない: 1 秒後にクライアント側カーネルがプローブ (シーケンス番号を1つ戻した ACK) を送り、"
                    + "サーバー側カーネルが ACK で答える。以後 1 秒ごと"),
            result: { $0 }
        ) { () throws(Errno) in try client.poll(.readable, timeout: .milliseconds(2600)).isEmpty ? 0 : 1 }
        try lab.require("client", "close") { () throws(Errno) in try client.close() }
        try lab.require("server", "close") { () throws(Errno) in try connection.close() }
        try? listener.close()
        return (config.server, clientAddress)
    }
}
