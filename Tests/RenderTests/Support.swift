import Foundation
import PacketWire
import Render
import SocketLab
import Sockets
import TestSupport
import Testing
import Timeline

/// The seed lab, run for real once for the whole target: two runs at once would fight over the server's port.
/// Port 49231 rather than the seed's 49152, so a `packetflow server` left running on this host does not clash.
enum Seed {
    static let run: Result<LabResult, LabError> = {
        var config = LabConfiguration()
        config.server = SocketAddress(ip: .v4(0x7f00_0002), port: 49231)
        config.settle = .milliseconds(80)
        return Result { () throws(LabError) in try LabScenario.basic.run(config) }
    }()

    static func result() throws -> LabResult {
        switch run {
        case .success(let r): return r
        case .failure(let e): throw TestFailure("the seed lab did not run (capturing needs root): \(e)")
        }
    }

    /// What `packetflow lab --format html|mermaid` draws.
    static func diagram(_ r: LabResult, _ language: Language) -> FlowDiagram {
        LabReport(
            scenario: "basic", summary: LabScenario.basic.summary, calls: r.calls, packets: r.packets,
            captured: r.captured, serverAddress: r.serverAddress, clientAddress: r.clientAddress,
            droppedByKernel: r.statistics?.droppedByKernel
        ).diagram(language: language)
    }
}

/// Stands in for `packetflow read` of a multi-stream capture: packets only, no calls, a lifeline per endpoint.
/// Stream 1 is long enough to need two pages.
enum Synthetic {
    static let streamSizes = [5, 250, 4]

    static func packets() -> (packets: [PacketEvent], payloads: [Int: [UInt8]]) {
        var packets: [PacketEvent] = []
        var payloads: [Int: [UInt8]] = [:]
        var next = Array(repeating: 0, count: streamSizes.count)
        var frame = 0
        // Round robin, so the streams interleave as they do in a real capture.
        while next.indices.contains(where: { next[$0] < streamSizes[$0] }) {
            for s in streamSizes.indices where next[s] < streamSizes[s] {
                let i = next[s]
                next[s] += 1
                frame += 1
                let fromClient = i % 2 == 0
                let client = Endpoint(.v4(0x0a00_0001), UInt16(50000 + s))
                let server = Endpoint(.v4(0x0a00_0002), 80)
                let payload = i >= 3 && fromClient ? Array("GET /\(s)/\(i) HTTP/1.1\r\n".utf8) : []
                var p = PacketEvent(
                    frame: frame, timestamp: Timestamp(seconds: 1_700_000_000, nanoseconds: UInt32(frame * 1000)),
                    proto: .tcp, length: payload.count)
                (p.source, p.sourcePort) = fromClient ? (client.address, client.port) : (server.address, server.port)
                (p.destination, p.destinationPort) =
                    fromClient ? (server.address, server.port) : (client.address, client.port)
                p.flags = i == 0 ? .syn : i == 1 ? [.syn, .ack] : payload.isEmpty ? .ack : [.psh, .ack]
                p.seq = UInt32(i)
                p.ack = i == 0 ? nil : UInt32(i)
                p.window = 512
                p.stream = s
                if !payload.isEmpty { payloads[frame] = payload }
                packets.append(p)
            }
        }
        return (packets, payloads)
    }

    static func diagram() -> FlowDiagram {
        let (packets, payloads) = packets()
        return FlowDiagram(
            title: "synthetic capture: 3 TCP streams", lifelines: FlowDiagram.endpointLifelines(for: packets),
            packets: packets, payloads: payloads)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension FlowDiagram {
    /// The packets in the order the diagrams draw them.
    var drawnPackets: [PacketEvent] {
        rows.compactMap { if case .packet(let p) = $0 { p } else { nil } }
    }
}

/// Debian's `chromium`, headless. Every run gets its own profile directory so runs never share state.
enum Chromium {
    static let executable: String? = {
        if let e = ProcessInfo.processInfo.environment["CHROMIUM"] { return e }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            for name in ["chromium", "chromium-browser"]
            where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }()

    static func require() throws -> String {
        guard let executable else {
            throw TestFailure(
                "chromium is not installed, so the browser test cannot run: apt-get install -y chromium "
                    + "(or set CHROMIUM to a Chromium binary)")
        }
        return executable
    }

    /// The DOM after the page's scripts ran.
    static func dumpDOM(_ url: URL) throws -> String {
        try run(["--dump-dom", url.absoluteString])
    }

    static func screenshot(_ url: URL, to png: URL, width: Int = 1200, height: Int = 900) throws {
        _ = try run([
            "--screenshot=\(png.path)", "--window-size=\(width),\(height)", "--hide-scrollbars", url.absoluteString,
        ])
        guard FileManager.default.fileExists(atPath: png.path) else {
            throw TestFailure("chromium wrote no screenshot to \(png.path)")
        }
    }

    static func run(_ arguments: [String]) throws -> String {
        let chromium = try require()
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("pf-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let r = try runProcess(
            URL(fileURLWithPath: chromium),
            ["--headless", "--disable-gpu", "--no-sandbox", "--user-data-dir=\(profile.path)"] + arguments)
        guard r.status == 0 else {
            throw TestFailure("chromium \(arguments.first ?? "") exited with status \(r.status)")
        }
        return r.stdout
    }
}

/// Width, height and (up to 4096) distinct colours of a PNG, from png_colors.py next to this file.
func pngStatistics(_ png: URL) throws -> (width: Int, height: Int, colours: Int) {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("png_colors.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, png.path]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let numbers = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap {
        Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard process.terminationStatus == 0, numbers.count == 3 else {
        throw TestFailure("cannot read \(png.path) with python3 png_colors.py")
    }
    return (numbers[0], numbers[1], numbers[2])
}

/// The `data-frame` of every packet arrow in a dumped DOM, in document order.
func arrowFrames(_ dom: String) -> [Int] {
    dom.matches(of: /<g class="packet[^"]*" data-frame="(\d+)"/).compactMap { Int($0.1) }
}
