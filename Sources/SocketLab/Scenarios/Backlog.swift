import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// More clients than the accept queue holds while the server does not call accept.
    public static let backlog = LabScenario(
        name: "backlog",
        summary: "more clients than listen(2) allows, no accept: completed handshakes, ignored SYNs and their retries",
        summaryJa: "listen(2) の上限を超える接続、accept なし: 完了するハンドシェイク、無視される SYN とその再送"
    ) { (lab, config) throws(LabError) in
        let family: Socket.Family = config.server.ip.isIPv6 ? .ipv6 : .ipv4
        let socketArgs: [(String, ArgumentValue)] = [
            ("family", .string(family == .ipv6 ? "AF_INET6" : "AF_INET")), ("type", .string("SOCK_STREAM|O_NONBLOCK")),
        ]
        let listener = try lab.require("server", "socket", socketArgs, result: { Int($0.fileDescriptor) }) {
            () throws(Errno) in
            let s = try Socket(family: family, type: .stream)
            try s.setReuseAddress(true)
            try s.setNonBlocking(true)
            return s
        }
        lab.watch("server", listener)
        try lab.require("server", "bind", [("address", config.server.argument)]) { () throws(Errno) in
            try listener.bind(to: config.server)
        }
        try lab.require(
            "server", "listen", [("backlog", .int(1))],
            note: LabText(
                "Linux queues up to backlog + 1 = 2 finished handshakes for accept",
                ja: "Linux は accept 待ちの完了済み接続を backlog + 1 = 2 個まで保持する")
        ) { () throws(Errno) in try listener.listen(backlog: 1) }

        var clients: [(String, Socket)] = []
        for n in 1...3 {
            let actor = n == 1 ? "client" : "client \(n)"
            let s = try lab.require(
                actor, "socket", socketArgs,
                note: n == 1
                    ? LabText(
                        "the clients are non-blocking: connect returns EINPROGRESS and the handshake goes on without them",
                        ja: "クライアントはノンブロッキング: connect は EINPROGRESS を返し、ハンドシェイクはカーネルが続ける") : nil,
                result: { Int($0.fileDescriptor) }
            ) { () throws(Errno) in
                let s = try Socket(family: family, type: .stream)
                try s.setNonBlocking(true)
                if config.clientNeedsBind { try s.bind(to: config.clientAddress) }
                return s
            }
            if n == 1 { lab.watch(actor, s) } else { lab.name(actor, s) }
            clients.append((actor, s))
            lab.step(
                actor, "connect", [("address", config.server.argument)],
                note: n == 3
                    ? LabText(
                        "the accept queue is full: the server's kernel drops this SYN without an answer",
                        ja: "accept キューが満杯: サーバー側カーネルはこの SYN を黙って捨てる") : nil
            ) { () throws(Errno) in try s.connect(to: config.server) }
        }
        let (lastActor, last) = clients[2]
        lab.step(
            lastActor, "poll", [("events", .string("POLLOUT")), ("timeout_ms", .int(3500))],
            note: LabText(
                "meanwhile the client's kernel retransmits its SYN after 1 s, then 2 s later (timeouts double)",
                ja: "その間クライアント側カーネルは SYN を 1 秒後、さらに 2 秒後に再送する (間隔は倍になる)"),
            result: { $0 }
        ) { () throws(Errno) in try last.poll(.writable, timeout: .milliseconds(3500)).isEmpty ? 0 : 1 }
        let clientAddress = try? clients[0].1.localAddress
        var accepted: [Socket] = []
        for _ in 0..<3 {
            if case .success(let (s, _)) = lab.step(
                "server", "accept", result: { Int($0.0.fileDescriptor) },
                {
                    () throws(Errno) in try listener.accept()
                })
            {
                lab.name("server", s)
                accepted.append(s)
            }
        }
        lab.note(
            LabText(
                "accept took the two queued connections; client 3 gave up while still in SYN_SENT, so nothing is left (EAGAIN)",
                ja: "accept はキューの2接続を取り出した。client 3 は SYN_SENT のまま諦めたので、もう何もない (EAGAIN)"))
        for (actor, s) in clients.dropLast().reversed() { lab.closeQuietly(actor, s) }
        for s in accepted { lab.closeQuietly("server", s) }
        lab.closeQuietly("server", listener)
        return (config.server, clientAddress)
    }
}
