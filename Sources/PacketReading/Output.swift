import Glibc
import PacketCapture

/// Why output could not be written.
public enum OutputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reader went away (EPIPE: `packetflow read big.pcap | head`).
    case closed
    /// Any other failure (a full disk, /dev/full), with its errno: output is lost.
    case failed(Int32)

    public var description: String {
        switch self {
        case .closed: "the reader of the output has gone"
        case .failed(let e): "cannot write the output: \(String(cString: strerror(e)))"
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
        let e = writeAll(fileDescriptor, buffer)
        if e == EPIPE { throw .closed }
        if e != 0 { throw .failed(e) }
    }

    public func write(_ text: String) throws(OutputError) {
        var t = text
        let e = t.withUTF8 { writeAll(fileDescriptor, UnsafeRawBufferPointer($0)) }
        if e == EPIPE { throw .closed }
        if e != 0 { throw .failed(e) }
    }
}

/// The one write loop: all of `buffer`, retrying EINTR and short writes. Returns 0, or the errno that stopped it
/// (EPIPE when the reader has gone).
public func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int32 {
    guard let base = buffer.baseAddress else { return 0 }
    var offset = 0
    while offset < buffer.count {
        let n = Glibc.write(fd, base + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return errno }
        if n == 0 { return EIO }
        offset += n
    }
    return 0
}

/// "packetflow: TEXT" on stderr.
public func warn(_ text: String) {
    var t = "packetflow: " + text + "\n"
    t.withUTF8 { _ = Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
