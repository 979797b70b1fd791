import Foundation
import PacketFiles
import PacketWire
import TestSupport

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

/// A record copied out of the reader's buffer.
struct Copied: Equatable {
    var frame: Int
    var ns: Int64
    var capturedLength: Int
    var originalLength: Int
    var interface: Int
    var interfaceName: String?
    var linkType: LinkType
    var bytes: [UInt8]
    var comments: [String]

    /// The record's `CaptureInfo` again (the timestamp rebuilt from `ns`).
    var info: CaptureInfo {
        CaptureInfo(
            timestamp: Timestamp(totalNanoseconds: ns), capturedLength: capturedLength,
            originalLength: originalLength, interfaceIndex: interface, linkType: linkType,
            interfaceName: interfaceName)
    }
}

struct ReadResult {
    var format: CaptureFileFormat?
    var records: [Copied] = []
    var interfaces: [InterfaceInfo] = []
    var warnings: [String] = []
    var error: CaptureFileError?
}

/// `batched` reads through `forEachPacket` (the CLI's loop) instead of `next()`; both must give the same.
func readAll(_ reader: CaptureFileReader, batched: Bool = false) -> ReadResult {
    var result = ReadResult(format: reader.format)
    func copy(_ r: PacketRecord) -> Copied {
        Copied(
            frame: r.frameNumber, ns: r.info.timestamp.totalNanoseconds, capturedLength: r.info.capturedLength,
            originalLength: r.info.originalLength, interface: r.info.interfaceIndex,
            interfaceName: r.info.interfaceName, linkType: r.info.linkType,
            bytes: r.bytes.copyBytes(), comments: r.comments)
    }
    do {
        if batched {
            // Stop every 3 records and go on with a new call, as a caller that returns false and resumes would.
            var more = true
            while more {
                var n = 0
                more = try !reader.forEachPacket { r in
                    result.records.append(copy(r))
                    n += 1
                    return n < 3
                }
            }
        } else {
            try reader.forEach { r in result.records.append(copy(r)) }
        }
    } catch let e as CaptureFileError {
        result.error = e
    } catch {
        fatalError("unexpected \(error)")
    }
    result.interfaces = reader.interfaces
    result.warnings = reader.warnings
    return result
}

func readAll(
    path: String, bufferSize: Int = CaptureFileReader.defaultBufferSize, batched: Bool = false,
    readAhead: Bool? = nil
) -> ReadResult {
    do {
        return readAll(
            try CaptureFileReader(path: path, bufferSize: bufferSize, readAhead: readAhead),
            batched: batched)
    } catch {
        return ReadResult(error: error)
    }
}

func readAll(bytes: [UInt8], bufferSize: Int = CaptureFileReader.defaultBufferSize, batched: Bool = false)
    -> ReadResult
{
    bytes.withUnsafeBytes { raw -> ReadResult in
        do throws(CaptureFileError) {
            return readAll(try CaptureFileReader(bytes: raw, name: "mem", bufferSize: bufferSize), batched: batched)
        } catch {
            return ReadResult(error: error)
        }
    }
}

func ns(_ s: String) -> Int64 {
    // "1795776074.012163000" -> nanoseconds, no floating point.
    let parts = s.split(separator: ".")
    let frac = parts.count > 1 ? String(parts[1]).padding(toLength: 9, withPad: "0", startingAt: 0) : "0"
    return Int64(parts[0])! * 1_000_000_000 + Int64(frac)!
}

/// Runs tshark and returns its stdout lines (tab-separated fields), or nil when tshark is missing.
func tshark(_ args: [String]) throws -> [String]? {
    guard let tshark = installedTool("tshark") else { return nil }
    return try runProcess(tshark, args).stdout.split(separator: "\n").map(String.init)
}

func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "packetfiles-\(getpid())-\(UUID().uuidString)-\(name)"
}
