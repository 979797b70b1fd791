import Foundation
import TestSupport
import Testing

/// docs/library.md shows the example programs exactly as they are built (Examples/), and they do what it says.
@Suite struct LibraryDocTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The ```swift blocks of the page.
    static func swiftBlocks() throws -> [String] {
        let page = try String(contentsOf: root.appendingPathComponent("docs/library.md"), encoding: .utf8)
        return page.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
    }

    @Test(arguments: ["whosent", "streams"])
    func pageShowsTheExampleAsBuilt(_ name: String) throws {
        let source = try String(
            contentsOf: Self.root.appendingPathComponent("Examples/\(name)/main.swift"), encoding: .utf8)
        #expect(try Self.swiftBlocks().contains(source), "docs/library.md does not show Examples/\(name) as it is")
    }

    @Test func streamsPrintsTheStreamsOfAFile() throws {
        let bin = packetflowBinary().deletingLastPathComponent().appendingPathComponent("streams")
        let r = try runProcess(bin, [Self.root.appendingPathComponent("Tests/Fixtures/mix.pcap").path])
        #expect(r.status == 0)
        #expect(
            r.stdout.hasPrefix(
                """
                stream 0: fd00::26 → fd00::1a, 10 packets, 1277 bytes of payload
                stream 1: 10.0.0.39 → 10.0.0.102, 25 packets, 17380 bytes of payload

                """))
    }

    /// A real traced program: the SYN and the data are its calls', the SYN/ACK and the ACK of data its kernel's.
    @Test func whosentNamesTheCallOfEachPacket() throws {
        try #require(geteuid() == 0, "tracing needs ptrace and capture: run the tests as root (CI does)")
        let bin = packetflowBinary().deletingLastPathComponent().appendingPathComponent("whosent")
        let program = """
            import socket
            l = socket.create_server(("127.0.0.2", 0))
            c = socket.create_connection(l.getsockname())
            a, _ = l.accept()
            c.sendall(b"hello")
            a.recv(10)
            c.close(); a.close(); l.close()
            """
        let r = try runProcess(bin, ["python3", "-c", program])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("TCP SYN len=0: python3[") && $0.contains(" connect at <string>:3") })
        #expect(lines.contains { $0.hasSuffix("TCP SYN/ACK len=0: the kernel (SYN/ACK of a listening socket)") })
        #expect(lines.contains { $0.contains("PSH/ACK len=5: python3[") && $0.contains(" at <string>:5") })
        #expect(lines.contains { $0.hasSuffix("TCP ACK len=0: the kernel (ACK of data)") })
    }
}
