import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// Small writes with Nagle's algorithm on (the default) and off (`TCP_NODELAY`).
    public static let nagle = LabScenario(
        name: "nagle",
        summary: "several small writes with and without TCP_NODELAY",
        summaryJa: "小さな書き込みを連続: TCP_NODELAY なしとありの比較"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        // One request and answer first, so the server's kernel leaves quick-ACK mode and delays its ACKs (40 ms),
        // as it does in a real interactive exchange; otherwise loopback ACKs each write before the next one.
        let hello = Array("hello\n".utf8)
        try lab.require("client", "sendall", [("data", dataArgument(hello))], result: { hello.count }) {
            () throws(Errno) in try client.sendAll(hello)
        }
        lab.receive("server", connection)
        try lab.require("server", "send", [("data", dataArgument(hello))], result: { $0 }) { () throws(Errno) in
            try connection.send(hello)
        }
        lab.receive("client", client)
        let piece = Array("tiny".utf8)
        let writes = 6
        for noDelay in [false, true] {
            if noDelay {
                try lab.require("client", "setsockopt", [("option", .string("TCP_NODELAY")), ("value", .int(1))]) {
                    () throws(Errno) in try client.setNoDelay(true)
                }
            }
            try lab.require(
                "server", "setsockopt", [("option", .string("TCP_QUICKACK")), ("value", .int(0))],
                note: noDelay
                    ? nil
                    : LabText(
                        "on loopback the server's kernel ACKs each segment at once, so Nagle would have nothing to wait"
                            + " for; delayed ACKs (40 ms) make it visible, as on a real network",
                        ja: "ループバックではサーバー側カーネルが即座に ACK するので Nagle は待つ必要がない。"
                            + "遅延 ACK (40 ms) にすると、実ネットワークと同じく効果が見える")
            ) { () throws(Errno) in try connection.setQuickAck(false) }
            try lab.require(
                "client", "send ×\(writes)", [("data", dataArgument(piece))],
                note: noDelay
                    ? LabText(
                        "TCP_NODELAY: every write leaves at once as its own segment",
                        ja: "TCP_NODELAY: 書き込みごとにすぐ1セグメントで送られる")
                    : LabText(
                        "Nagle: while a small segment is unacknowledged, later small writes wait and go out together",
                        ja: "Nagle: 小さなセグメントが未確認の間、後の小さな書き込みは待たされ、まとめて送られる"),
                result: { $0 }
            ) { () throws(Errno) in
                var total = 0
                for _ in 0..<writes { total += try client.send(piece) }
                return total
            }
            try lab.require("server", "recv", [("until", .int(piece.count * writes))], result: { $0 }) {
                () throws(Errno) in try LabSession.receiveAll(connection, count: piece.count * writes)
            }
        }
        try lab.require("client", "close") { () throws(Errno) in try client.close() }
        try lab.require("server", "close") { () throws(Errno) in try connection.close() }
        try? listener.close()
        return (config.server, clientAddress)
    }
}
