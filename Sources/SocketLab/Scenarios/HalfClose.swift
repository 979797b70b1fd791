import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// `shutdown(SHUT_WR)`: the client's FIN says "no more from me", yet the server goes on sending.
    public static let halfClose = LabScenario(
        name: "half-close",
        summary: "shutdown(SHUT_WR) sends a FIN while the other side keeps sending; then the rest",
        summaryJa: "shutdown(SHUT_WR) で FIN を送っても、相手はまだ送信を続けられる (ハーフクローズ)"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        let request = Array("send me everything\n".utf8)
        try lab.require("client", "sendall", [("data", dataArgument(request))], result: { request.count }) {
            () throws(Errno) in try client.sendAll(request)
        }
        try lab.require(
            "client", "shutdown", [("how", .string("SHUT_WR"))],
            note: LabText(
                "the client's sending half is closed: a FIN goes out, but it can still receive",
                ja: "クライアントの送信側だけを閉じる: FIN が出るが、受信はまだできる")
        ) { () throws(Errno) in try client.shutdown(.write) }
        lab.receive("server", connection)
        lab.receive(
            "server", connection,
            note: LabText(
                "recv returns 0: end of file, the client's FIN was read", ja: "recv が 0 を返す: クライアントの FIN (EOF) を読んだ"))
        for part in ["part 1 of the answer\n", "part 2 of the answer\n"] {
            let bytes = Array(part.utf8)
            try lab.require("server", "send", [("data", dataArgument(bytes))], result: { $0 }) { () throws(Errno) in
                try connection.send(bytes)
            }
        }
        lab.receive("client", client)
        try lab.require("server", "close") { () throws(Errno) in try connection.close() }
        lab.receive("client", client, note: LabText("0: the server's FIN", ja: "0: サーバーの FIN"))
        try lab.require("client", "close") { () throws(Errno) in try client.close() }
        try? listener.close()
        return (config.server, clientAddress)
    }
}
