import Sockets
import SystemCalls
import Timeline

extension LabScenario {
    /// Both sides call close on two threads released together.
    public static let simultaneousClose = LabScenario(
        name: "simultaneous-close",
        summary: "both sides close at once (two threads): FINs cross, CLOSING, both may end in TIME_WAIT",
        summaryJa: "両側が同時に close (2スレッド): FIN が交差し CLOSING を経て、両側が TIME_WAIT になりうる"
    ) { (lab, config) throws(LabError) in
        let (listener, connection, client, clientAddress) = try connectPair(lab, config)
        lab.together([
            .init("server", "close") { () throws(Errno) in
                try connection.close()
                return 0
            },
            .init("client", "close") { () throws(Errno) in
                try client.close()
                return 0
            },
        ])
        let states = lab.calls.last?.tcpStates.map(\.1) ?? []
        if states.allSatisfy({ $0 == .timeWait || $0 == .closing }) {
            lab.note(
                LabText(
                    "each FIN left before the other arrived: both sides went FIN_WAIT1 → CLOSING → TIME_WAIT",
                    ja: "互いの FIN が届く前に両方が FIN を送った: 両側とも FIN_WAIT1 → CLOSING → TIME_WAIT"))
        } else {
            lab.note(
                LabText(
                    "one FIN arrived before the other side's close ran, so this time it was an ordinary close"
                        + " (the race is decided by microseconds; run again)",
                    ja: "片方の FIN が相手の close より先に届いたため、今回は通常のクローズになった (数マイクロ秒の競争; 再実行を)"))
        }
        try? listener.close()
        return (config.server, clientAddress)
    }
}
