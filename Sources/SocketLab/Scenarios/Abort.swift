import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// `SO_LINGER` {on, 0} turns `close` into an abort: a RST, no FIN, no TIME_WAIT.
    public static let abort = LabScenario(
        name: "abort",
        summary: "SO_LINGER with a zero timeout, then close → RST instead of FIN",
        summaryJa: "SO_LINGER のタイムアウト 0 で close → FIN の代わりに RST"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        let message = Array("hello before the abort\n".utf8)
        try lab.require("client", "sendall", [("data", dataArgument(message))], result: { message.count }) {
            () throws(Errno) in try client.sendAll(message)
        }
        lab.receive("server", connection)
        try lab.require(
            "client", "setsockopt", [("option", .string("SO_LINGER")), ("l_onoff", .int(1)), ("l_linger", .int(0))]
        ) { () throws(Errno) in try client.setLinger(seconds: 0) }
        try lab.require(
            "client", "close",
            note: LabText(
                "with a zero linger time, close aborts: the kernel sends a RST and forgets the connection at once",
                ja: "linger 時間 0 の close は中断: カーネルは RST を送り、接続をすぐに捨てる (TIME_WAIT なし)")
        ) { () throws(Errno) in try client.close() }
        lab.receive(
            "server", connection,
            note: LabText("the RST is reported to the peer as ECONNRESET", ja: "相手には RST が ECONNRESET として届く"))
        lab.closeQuietly("server", connection)
        try? listener.close()
        return (config.server, clientAddress)
    }
}
