import PacketWire
import Timeline

/// What `packetflow lab` shows of one run, in every format: the calls in order, each packet under the call during
/// which it was sent, between the server's column (left, as the seed draws it) and the client's.
public struct LabReport: Sendable {
    /// The scenario's name ("basic") and its one-line summary, in the report's language.
    public var scenario: String
    public var summary: String
    public var calls: [CallEvent]
    public var packets: [PacketEvent]
    /// The captured packets (frame 1 first), whose payloads the HTML page's details panel shows.
    public var captured: [CapturedPacket]
    public var serverAddress: String
    public var clientAddress: String?
    /// The kernel's drop count, or nil when nothing was captured (`--no-capture`).
    public var droppedByKernel: UInt64?

    public init(
        scenario: String, summary: String, calls: [CallEvent], packets: [PacketEvent], captured: [CapturedPacket],
        serverAddress: String, clientAddress: String?, droppedByKernel: UInt64?
    ) {
        self.scenario = scenario
        self.summary = summary
        self.calls = calls
        self.packets = packets
        self.captured = captured
        self.serverAddress = serverAddress
        self.clientAddress = clientAddress
        self.droppedByKernel = droppedByKernel
    }

    /// One JSON object per line: each call followed by the packets sent during it.
    public var jsonLines: String { JSONLines.lines(calls: calls, packets: packets, order: .byCall) }

    /// The lab as the Mermaid and HTML renderers draw it: the server's lifeline on the left, as the seed draws it.
    public func diagram(language: Language) -> FlowDiagram {
        let title = (language == .ja ? "PacketFlow ラボ" : "PacketFlow lab") + " — \(scenario)"
        return FlowDiagram(
            title: title, language: language,
            lifelines: [
                Lifeline(id: "server", label: language.lifelineLabel("server"), address: serverAddress),
                Lifeline(id: "client", label: language.lifelineLabel("client"), address: clientAddress),
            ],
            calls: calls, packets: packets, payloads: FlowDiagram.payloads(of: captured))
    }

    /// The terminal sequence diagram with its title and the packet counts.
    public func text(language: Language, color: Bool, explain: Bool = false) -> String {
        var d = SequenceDiagram(leftActor: "server", rightActor: "client", language: language, color: color)
        d.explain = explain
        let title = language == .ja ? "PacketFlow ラボ" : "PacketFlow lab"
        var out = "\(title): \(scenario) — \(summary)\n"
        out += d.header(left: serverAddress, right: clientAddress)
        out += d.render(calls: calls, packets: packets)
        out += "\n"
        if let dropped = droppedByKernel {
            let kernel = packets.filter(\.byKernel).count
            out +=
                language == .ja
                ? "\(packets.count) パケット (うちカーネルが自ら送信: \(kernel))、カーネルでの取りこぼし \(dropped)\n"
                : "\(packets.count) packets (\(kernel) sent by a kernel on its own), \(dropped) dropped by the kernel\n"
        } else {
            out +=
                language == .ja ? "キャプチャなし (--no-capture)\n" : "no capture (--no-capture): calls and TCP states only\n"
        }
        return out
    }
}
