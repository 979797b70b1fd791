import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// Closing a socket whose receive queue still holds data is an abort (RFC 2525 §2.17): RST, not FIN.
    public static let unreadClose = LabScenario(
        name: "unread-close",
        summary: "close while received data is still unread → RST",
        summaryJa: "受信データを読まずに close → RST"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        let message = Array("a request the server never reads\n".utf8)
        try lab.require("client", "sendall", [("data", dataArgument(message))], result: { message.count }) {
            () throws(Errno) in try client.sendAll(message)
        }
        try lab.require(
            "server", "close",
            note: LabText(
                "the server closes with \(message.count) unread bytes: the kernel resets the connection instead of a FIN",
                ja: "未読の \(message.count) バイトを残して close: カーネルは FIN ではなく RST で接続を切る")
        ) { () throws(Errno) in try connection.close() }
        lab.receive(
            "client", client,
            note: LabText("the client learns of the RST as ECONNRESET", ja: "クライアントには ECONNRESET として届く"))
        lab.closeQuietly("client", client)
        try? listener.close()
        return (config.server, clientAddress)
    }
}
