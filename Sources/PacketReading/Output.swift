import Glibc
import PacketCapture
import SystemCalls

/// Why output could not be written.
public enum OutputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reader went away (EPIPE: `packetflow read big.pcap | head`).
    case closed
    /// Any other failure (a full disk, /dev/full), with its errno: output is lost.
    case failed(Int32)

    public var description: String {
        switch self {
        case .closed: "the reader of the output has gone"
        case .failed(let e): "cannot write the output: \(Errno(rawValue: e).message)"
        }
    }
}

/// Why reading packets stopped.
public enum ReadError: Error, Sendable, CustomStringConvertible {
    /// libpcap rejected the filter.
    case filter(CaptureError)
    case output(OutputError)

    public var description: String {
        switch self {
        case .filter(let e): e.description
        case .output(let e): e.description
        }
    }
}

/// Where output goes: a file descriptor, written whole (short writes and EINTR retried).
public struct OutputSink: Sendable {
    public let fileDescriptor: Int32

    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    public func write(_ buffer: UnsafeRawBufferPointer) throws(OutputError) {
        do throws(Errno) { try FileDescriptor(rawValue: fileDescriptor).writeAll(buffer) } catch {
            throw error.rawValue == EPIPE ? .closed : .failed(error.rawValue)
        }
    }

    public func write(_ text: String) throws(OutputError) {
        var t = text
        let failure = t.withUTF8 { bytes -> OutputError? in
            do throws(OutputError) { try write(UnsafeRawBufferPointer(bytes)) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }
}

/// "packetflow: TEXT" on stderr.
public func warn(_ text: String) {
    progress("packetflow: " + text + "\n")
}

/// Progress text on stderr as it is, without a newline (the next update overwrites it).
func progress(_ text: String) {
    var t = text
    t.withUTF8 { try? FileDescriptor.standardError.writeAll(UnsafeRawBufferPointer($0)) }
}

/// --count's line, as tcpdump --count prints it: "1 packet", "5 packets".
public func countLine(_ n: Int) -> String { "\(n) packet\(n == 1 ? "" : "s")\n" }
