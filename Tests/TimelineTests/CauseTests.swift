import PacketWire
import Render
import Testing
import Timeline

/// One reason of each kind, with data where the kind carries some. The switch is exhaustive, so a new kind of
/// reason does not compile until it has an example here, and then the tests below hold it to both languages.
func example(_ kind: KernelReason.Kind) -> [KernelReason] {
    switch kind {
    case .synAckOfListener: [.synAckOfListener]
    case .synRetransmission: [.synRetransmission]
    case .synAckRetransmission: [.synAckRetransmission]
    case .handshakeAck: [.handshakeAck]
    case .ackOfData: [.ackOfData]
    case .ackOfFIN: [.ackOfFIN]
    case .windowUpdate: [.windowUpdate]
    case .duplicateAck: [.duplicateAck]
    case .retransmission: [.retransmission(call: nil), .retransmission(call: 7)]
    case .finRetransmission: [.finRetransmission]
    case .keepAliveProbe: [.keepAliveProbe]
    case .keepAliveAck: [.keepAliveAck]
    case .refusedReset: [.refusedReset]
    case .resetFrom: [.resetFrom(.role("client")), .resetFrom(.process("python3[12]")), .resetFrom(.peer)]
    case .finAtExit: [.finAtExit]
    case .resetAtExit: [.resetAtExit]
    case .deferred: [.deferred(call: 4, context: "NET_RX")]
    case .sentDuring: [.sentDuring(sender: .role("client"), actor: .role("server"), call: "accept")]
    case .sentBy: [.sentBy(nil), .sentBy(.role("client 2")), .sentBy(.endpoint("127.0.0.1:5000"))]
    case .icmp:
        [
            .icmp(summary: "port unreachable", undelivered: nil), .icmp(summary: nil, undelivered: nil),
            .icmp(summary: "port unreachable", undelivered: .init(sender: "python3[9]", destination: "127.0.0.1:9")),
        ]
    case .arp: [.arp]
    }
}

@Suite struct CauseTests {
    /// Every kernel reason reads in English and in Japanese, and the Japanese is Japanese.
    @Test(arguments: KernelReason.Kind.allCases)
    func everyReasonHasBothLanguages(_ kind: KernelReason.Kind) {
        for reason in example(kind) {
            #expect(reason.kind == kind)
            let en = reason.text(.en)
            let ja = reason.text(.ja)
            #expect(!en.isEmpty && en.unicodeScalars.allSatisfy(\.isASCII), "\(reason)")
            #expect(ja != en, "\(reason) has no Japanese")
            #expect(ja.unicodeScalars.contains { $0.value >= 0x3040 }, "\(reason): \(ja)")
        }
    }

    /// The JSON Lines `reason` strings, as the contract has always had them (both attributors' wordings).
    @Test func englishIsTheContract() {
        #expect(KernelReason.resetFrom(.role("client")).text(.en) == "RST from the client's kernel")
        #expect(KernelReason.resetFrom(.process("python3[12]")).text(.en) == "RST from python3[12]'s kernel")
        #expect(KernelReason.resetFrom(.peer).text(.en) == "RST from the peer's kernel")
        #expect(KernelReason.retransmission(call: 3).text(.en) == "retransmission of bytes from call #3")
        #expect(
            KernelReason.sentDuring(sender: .role("client"), actor: .role("server"), call: "accept").text(.en)
                == "sent by the client's kernel while the server ran accept")
        #expect(KernelReason.sentBy(nil).text(.en) == "sent by the kernel")
        #expect(
            KernelReason.icmp(
                summary: "port unreachable", undelivered: .init(sender: "nc[4]", destination: "1.2.3.4:5")
            )
            .text(.en) == "ICMP port unreachable: the datagram nc[4] sent to 1.2.3.4:5 was not delivered")
    }

    /// A traced program's own kernel stays its own in Japanese: it is not "the peer's" (相手側).
    @Test func ownKernelIsNotThePeers() {
        let ja = KernelReason.resetFrom(.process("python3[12]")).text(.ja)
        #expect(ja.contains("python3[12]") && !ja.contains("相手側"))
        #expect(KernelReason.resetFrom(.role("server")).text(.ja) == "サーバーのカーネルからのRST")
        #expect(KernelReason.sentBy(.role("client 2")).text(.ja) == "クライアント 2のカーネルが送信")
    }

    /// A trace timeline in Japanese: every packet's note in Japanese, none of the English reasons left.
    @Test func traceTimelineInJapaneseHasNoEnglishReasons() {
        let t0 = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        var call = CallEvent(id: 1, actor: "python3[12]", name: "connect", result: 0, start: t0, end: t0)
        call.pid = 12
        var packets: [PacketEvent] = []
        let reasons = KernelReason.Kind.allCases.flatMap(example)
        for (i, reason) in reasons.enumerated() {
            var p = PacketEvent(
                frame: i + 1, timestamp: Timestamp(seconds: t0.seconds, nanoseconds: UInt32(i + 1) * 1000),
                proto: .tcp, length: 0)
            (p.source, p.sourcePort) = (IPAddress("127.0.0.1")!, 40000)
            (p.destination, p.destinationPort) = (IPAddress("127.0.0.2")!, 49152)
            p.flags = [.ack]
            p.kernel = reason
            packets.append(p)
        }
        let text = TraceText(language: .ja, color: false).render(
            command: "python3 client.py", calls: [call], packets: packets, captured: true)
        for reason in reasons {
            #expect(text.contains(reason.text(.ja)), "\(reason)")
            #expect(!text.contains("(kernel: "), "\(reason)")
        }
        #expect(!text.contains("sent by") && !text.contains("retransmission") && !text.contains("calls,"))
    }

    /// A long timeline is written in two halves on two cores: the lines come out in the order of the events, each
    /// once, the same as a short one's (5000 calls and 5000 packets, interleaved in time).
    @Test func aLongTimelineKeepsEveryLineInOrder() {
        let t0 = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        let n = 5000
        func at(_ k: Int) -> Timestamp {
            Timestamp(seconds: t0.seconds + Int64(k / 1000), nanoseconds: UInt32(k % 1000) * 1000)
        }
        var calls: [CallEvent] = []
        var packets: [PacketEvent] = []
        for i in 0..<n {
            var call = CallEvent(
                id: i + 1, actor: "python3[12]", name: "sendto", result: 1, start: at(2 * i), end: at(2 * i))
            call.pid = 12
            calls.append(call)
            var p = PacketEvent(frame: i + 1, timestamp: at(2 * i + 1), proto: .tcp, length: 1)
            (p.source, p.sourcePort) = (IPAddress("127.0.0.1")!, UInt16(40000 + i % 7))
            (p.destination, p.destinationPort) = (IPAddress("127.0.0.2")!, 49152)
            p.flags = [.psh, .ack]
            p.call = i + 1
            p.sender = "python3[12]"
            packets.append(p)
        }
        let text = TraceText(language: .en, color: false).render(
            command: "python3 x.py", calls: calls, packets: packets, captured: true)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 1 + 2 * n + 3, "title, a line per event, blank, summary, end")
        for i in 0..<n {
            let call = lines[1 + 2 * i]
            let packet = lines[2 + 2 * i]
            guard call.contains(" #\(i + 1) python3[12] sendto("), packet.hasSuffix("  ← sent by #\(i + 1) sendto")
            else {
                Issue.record("line \(1 + 2 * i): \(call) / \(packet)")
                return
            }
        }
        #expect(lines[1 + 2 * n] == "")
        #expect(lines[2 + 2 * n] == "\(n) calls, \(n) packets (0 sent by a kernel on its own)")
    }
}
