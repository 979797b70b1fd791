import Glibc
import PacketWire
import SystemCalls

/// Whole packets streamed to an unlinked temporary file while a capture runs, and read back in order afterwards.
///
/// A trace's `-w` needs every byte of every packet, but only once the calls that sent them are known; a 1 GB
/// transfer must not sit in memory meanwhile. The file is made as mkstemp(3) makes one (a fresh name, O_EXCL,
/// mode 0600) and unlinked at once: nothing is left behind, whatever ends the process, and nothing can reach it by
/// its name. A write error (a full disk) is kept and thrown by `forEachPacket`; the capture itself goes on.
public final class PacketSpool {
    private let fd: Int32
    private var pending: [UInt8] = []
    private static let flushSize = 1 << 20
    private static let longestRecord = 256 << 20
    /// Packets appended.
    public private(set) var count = 0
    /// Bytes appended (records included).
    public private(set) var byteCount = 0
    private var failure: CaptureError?
    private var closed = false

    /// One record: the packet's capture metadata, then its bytes.
    private enum Record {
        static let seconds = 0, nanoseconds = 8, capturedLength = 12, originalLength = 16, linkType = 20
        static let headerLength = 24
    }

    /// Creates the file in `directory` (TMPDIR, else /tmp, when nil).
    public init(directory: String? = nil) throws(CaptureError) {
        let dir = directory ?? Linux.temporaryDirectory
        var template = Array("\(dir)/packetflow-spool-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw CaptureError(.other, "cannot make a spool file in \(dir): \(Errno(rawValue: errno).message)")
        }
        unlink(template)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        self.fd = fd
        pending.reserveCapacity(Self.flushSize + 64)
    }

    deinit { if !closed { Glibc.close(fd) } }

    /// Appends one packet. After a write error nothing more is written; `forEachPacket` then throws that error.
    public func append(_ info: CaptureInfo, _ bytes: ByteView) {
        guard failure == nil else { return }
        var header = (
            UInt64(bitPattern: info.timestamp.seconds).littleEndian, info.timestamp.nanoseconds.littleEndian,
            UInt32(truncatingIfNeeded: bytes.count).littleEndian,
            UInt32(clamping: info.originalLength).littleEndian, info.linkType.rawValue.littleEndian
        )
        withUnsafeBytes(of: &header) { pending.append(contentsOf: $0.prefix(Record.headerLength)) }
        bytes.withUnsafeBytes { pending.append(contentsOf: $0) }
        count += 1
        byteCount += Record.headerLength + bytes.count
        if pending.count >= Self.flushSize { flush() }
    }

    private func flush() {
        guard failure == nil, !pending.isEmpty else { return }
        // On the capture thread: Errno's message, not strerror's shared buffer.
        let written = pending.withUnsafeBytes { raw in
            Result { () throws(Errno) in try FileDescriptor(rawValue: fd).writeAll(raw) }
        }
        if case .failure(let error) = written {
            failure = CaptureError(.other, "cannot write the packets to a spool file: \(error.message)")
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with each packet's index (from 0), metadata and bytes, in the order they were appended. The
    /// bytes are valid only during the call.
    public func forEachPacket(_ body: (Int, CaptureInfo, ByteView) throws -> Void) throws {
        flush()
        if let failure { throw failure }
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw readError(errno) }
        var buffer = [UInt8](repeating: 0, count: Self.flushSize)
        var start = 0
        var end = 0
        var index = 0
        // Makes `need` bytes from `start` available, moving what is left to the front and reading more.
        func fill(_ need: Int) throws -> Bool {
            if end - start >= need { return true }
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start)
                }
                end -= start
                start = 0
            }
            if buffer.count < need { buffer += [UInt8](repeating: 0, count: need - buffer.count) }
            while end < need {
                let got = buffer.withUnsafeMutableBytes { raw in
                    Result { () throws(Errno) in
                        try FileDescriptor(rawValue: fd).read(
                            into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
                    }
                }
                let n: Int
                switch got {
                case .success(let count): n = count
                case .failure(let error): throw readError(error.rawValue)
                }
                if n == 0 { return false }
                end += n
            }
            return true
        }
        while index < count {
            guard try fill(Record.headerLength) else { break }
            let header = buffer.withUnsafeBytes { raw in
                let v = ByteView(UnsafeRawBufferPointer(rebasing: raw[start..<(start + Record.headerLength)]))
                return (
                    v.u64le(Record.seconds), v.u32le(Record.nanoseconds), v.u32le(Record.capturedLength),
                    v.u32le(Record.originalLength), v.u32le(Record.linkType)
                )
            }
            guard let seconds = header.0, let nanoseconds = header.1, let captured = header.2.map(Int.init),
                let original = header.3, let link = header.4
            else { break }
            // No live packet is this long (libpcap's snapshot length is at most 256 KiB): the file is damaged.
            guard captured <= Self.longestRecord else {
                throw CaptureError(.other, "the spool file is damaged at packet \(index + 1)")
            }
            guard try fill(Record.headerLength + captured) else { break }
            let info = CaptureInfo(
                timestamp: Timestamp(seconds: Int64(bitPattern: seconds), nanoseconds: nanoseconds),
                capturedLength: captured, originalLength: Int(original), linkType: LinkType(rawValue: link))
            let from = start + Record.headerLength
            try buffer.withUnsafeBytes { raw in
                try body(index, info, ByteView(UnsafeRawBufferPointer(rebasing: raw[from..<(from + captured)])))
            }
            start = from + captured
            index += 1
        }
        if index < count {
            throw CaptureError(.other, "the spool file ended after \(index) of \(count) packets")
        }
    }

    private func readError(_ code: Int32) -> CaptureError {
        CaptureError(.other, "cannot read the spool file back: \(Errno(rawValue: code).message)")
    }

    /// Closes the file, which the kernel then frees (it has no name).
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}
