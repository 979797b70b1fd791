import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// One large `sendall`: how many segments, how big, and the receiver's ACKs and window updates.
    public static let bulk = LabScenario(
        name: "bulk",
        summary: "one large sendall → many segments, ACKs and window updates; segment size vs MSS and loopback's MTU",
        summaryJa: "大きな sendall 1回 → 多数のセグメント、ACK、ウィンドウ更新; セグメント長と MSS・ループバックの MTU"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        // 192 KiB is more than the socket buffers hold at first, so the sender must wait for the receiver's window.
        let size = 196_608
        let data = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        lab.together(
            [
                .init("client", "sendall", [("data", .bytes(count: size, preview: "xxxx…"))]) { () throws(Errno) in
                    try client.sendAll(data)
                    return data.count
                },
                .init("server", "recv", [("until", .int(size))]) { () throws(Errno) in
                    try LabSession.receiveAll(connection, count: size)
                },
            ],
            note: LabText(
                "both SYNs announced an MSS of MTU − 40 (loopback's MTU is 65536), and the kernel hands loopback"
                    + " segments of up to 64 KiB at once (GSO), so a few large segments carry the whole buffer",
                ja: "両側の SYN が MSS = MTU − 40 を通知 (ループバックの MTU は 65536)。カーネルは最大 64 KiB の"
                    + "セグメントをそのまま渡す (GSO) ので、少数の大きなセグメントで全データが届く"))

        // A second connection whose client announces a small MSS: the server must not send more per segment.
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let small = try lab.require("client 2", "socket", result: { Int($0.fileDescriptor) }) { () throws(Errno) in
            try Socket(family: family, type: .stream)
        }
        lab.name("client 2", small)
        try lab.require("client 2", "setsockopt", [("option", .string("TCP_MAXSEG")), ("value", .int(1000))]) {
            () throws(Errno) in try small.setMaxSegmentSize(1000)
        }
        if config.clientNeedsBind {
            try lab.require("client 2", "bind", [("address", config.clientAddress.argument)]) { () throws(Errno) in
                try small.bind(to: config.clientAddress)
            }
        }
        try lab.require("client 2", "connect", [("address", config.server.argument)]) { () throws(Errno) in
            try small.connect(to: config.server, timeout: .seconds(5))
        }
        let (second, _) = try lab.require("server", "accept", result: { Int($0.0.fileDescriptor) }) {
            () throws(Errno) in try listener.accept()
        }
        let reply = [UInt8](repeating: UInt8(ascii: "y"), count: 12_000)
        lab.together(
            [
                .init("server", "sendall", [("data", .bytes(count: reply.count, preview: "yyyy…"))]) {
                    () throws(Errno) in
                    try second.sendAll(reply)
                    return reply.count
                },
                .init("client 2", "recv", [("until", .int(reply.count))]) { () throws(Errno) in
                    try LabSession.receiveAll(small, count: reply.count)
                },
            ],
            note: LabText(
                "client 2 announced mss 1000: the server's segments carry at most 1000 bytes minus TCP options"
                    + " (unless GSO hands the capture one larger buffer that the MSS would later split)",
                ja: "client 2 は mss 1000 を通知: サーバーのセグメントは 1000 バイト (から TCP オプション分を引いた長さ)"
                    + " 以下 (GSO がまとめた大きなバッファがキャプチャに見える場合を除く)"))
        lab.closeQuietly("client 2", small)
        lab.closeQuietly("server", second)
        lab.closeQuietly("client", client)
        lab.closeQuietly("server", connection)
        try? listener.close()
        return (config.server, clientAddress)
    }
}
