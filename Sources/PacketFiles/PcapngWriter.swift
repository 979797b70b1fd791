import Glibc
import PacketWire

/// Writes a pcapng file: a Section Header Block (shb_userappl "PacketFlow"), one Interface Description Block
/// per `addInterface` (nanosecond timestamps, `if_tsresol` 9), and Enhanced Packet Blocks with optional
/// `opt_comment`s. Output is buffered and goes out with `write(2)`; blocks are written in host (little-endian)
/// byte order with 32-bit padding and matching total lengths at both ends.
public final class PcapngWriter {
    public static let defaultBufferSize = 1 << 20

    public let path: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var used = 0
    private var written = 0
    private var closed = false
    private var interfaceCount = 0
    private var statistics: [Int: (received: UInt64?, dropped: UInt64?)] = [:]

    private enum Block {
        static let sectionHeader: UInt32 = 0x0A0D_0D0A
        static let interfaceDescription: UInt32 = 1
        static let interfaceStatistics: UInt32 = 5
        static let enhancedPacket: UInt32 = 6
    }

    /// Creates (or truncates) the file at `path`; "-" writes to standard output.
    public convenience init(path: String) throws(CaptureFileError) {
        if path == "-" {
            try self.init(fileDescriptor: 1, name: "stdout", closeWhenDone: false)
            return
        }
        switch Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644) {
        case .success(let fd): try self.init(fileDescriptor: fd, name: path, closeWhenDone: true)
        case .failure(let failure):
            throw CaptureFileError(path: path, byteOffset: 0, message: "cannot create: \(failure.message)")
        }
    }

    /// Writes to `fileDescriptor`, closing it at `close()` only when `closeWhenDone`.
    public init(fileDescriptor: Int32, name: String, closeWhenDone: Bool = false) throws(CaptureFileError) {
        path = name
        fd = fileDescriptor
        ownsDescriptor = closeWhenDone
        capacity = Self.defaultBufferSize
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        let application = "PacketFlow"
        let options = Self.optionLength(application.utf8.count) + 4
        try beginBlock(Block.sectionHeader, bodyLength: 16 + options) { w in
            w.put32(0x1A2B_3C4D)  // byte-order magic
            w.put16(1)  // major version
            w.put16(0)  // minor version
            w.put64(UInt64.max)  // section length: not given
            w.putOption(4, application)  // shb_userappl
            w.put32(0)  // opt_endofopt
        }
    }

    deinit {
        if !closed { try? close() }
        buffer.deallocate()
    }

    /// Describes an interface and returns its id for `writePacket`. `snapLength` 0 means no limit.
    @discardableResult
    public func addInterface(linkType: LinkType, snapLength: Int = 262_144, name: String? = nil)
        throws(CaptureFileError) -> Int
    {
        if let name, name.utf8.count > Int(UInt16.max) { throw error("interface name too long") }
        let nameLength = name.map { Self.optionLength($0.utf8.count) } ?? 0
        let options = nameLength + Self.optionLength(1) + 4
        try beginBlock(Block.interfaceDescription, bodyLength: 8 + options) { w in
            w.put16(UInt16(truncatingIfNeeded: linkType.rawValue))
            w.put16(0)
            w.put32(UInt32(clamping: snapLength))
            if let name { w.putOption(2, name) }  // if_name
            w.put16(9)  // if_tsresol: nanoseconds
            w.put16(1)
            w.put32(9)  // the value byte, then three bytes of padding
            w.put32(0)  // opt_endofopt
        }
        interfaceCount += 1
        return interfaceCount - 1
    }

    /// Remembers counters to write as an Interface Statistics Block (isb_ifrecv / isb_ifdrop) at `close()`.
    public func setStatistics(interface: Int, received: UInt64?, dropped: UInt64?) {
        statistics[interface] = (received, dropped)
    }

    /// Writes one Enhanced Packet Block. `originalLength` defaults to the captured length.
    public func writePacket(
        _ bytes: ByteView, timestamp: Timestamp, originalLength: Int? = nil,
        interface: Int = 0, comments: [String] = []
    ) throws(CaptureFileError) {
        guard interface >= 0, interface < interfaceCount else {
            throw error("packet for interface \(interface), but only \(interfaceCount) were added")
        }
        guard bytes.count <= CaptureFileReader.maxRecordLength - 64 else {
            throw error("packet of \(bytes.count) bytes exceeds the maximum record length")
        }
        var options = 0
        for comment in comments {
            guard comment.utf8.count <= Int(UInt16.max) else {
                throw error("comment of \(comment.utf8.count) bytes is longer than a pcapng option can be")
            }
            options += Self.optionLength(comment.utf8.count)
        }
        if options > 0 { options += 4 }
        let units = UInt64(bitPattern: timestamp.totalNanoseconds)
        try beginBlock(Block.enhancedPacket, bodyLength: 20 + Self.padded(bytes.count) + options) { w in
            w.put32(UInt32(interface))
            w.put32(UInt32(truncatingIfNeeded: units >> 32))
            w.put32(UInt32(truncatingIfNeeded: units))
            w.put32(UInt32(bytes.count))
            w.put32(UInt32(clamping: max(originalLength ?? bytes.count, bytes.count)))
            w.putBytes(bytes)
            for comment in comments { w.putOption(1, comment) }
            if options > 0 { w.put32(0) }
        }
    }

    /// Convenience for raw memory (live capture).
    public func writePacket(
        _ bytes: UnsafeRawBufferPointer, timestamp: Timestamp, originalLength: Int? = nil,
        interface: Int = 0, comments: [String] = []
    ) throws(CaptureFileError) {
        try writePacket(
            ByteView(bytes), timestamp: timestamp, originalLength: originalLength,
            interface: interface, comments: comments)
    }

    /// Sends everything buffered to the file.
    public func flush() throws(CaptureFileError) {
        guard used > 0 else { return }
        if case .failure(let failure) = Sys.writeAll(fd, buffer, used) {
            throw error("write failed: \(failure.message)")
        }
        written += used
        used = 0
    }

    /// Writes pending statistics, flushes, and closes the descriptor if the writer owns it.
    public func close() throws(CaptureFileError) {
        guard !closed else { return }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let units = UInt64(
            bitPattern: Timestamp(
                seconds: Int64(now.tv_sec),
                nanoseconds: UInt32(now.tv_nsec)
            ).totalNanoseconds)
        for (interface, counters) in statistics.sorted(by: { $0.key < $1.key })
        where interface >= 0 && interface < interfaceCount {
            let count = (counters.received == nil ? 0 : 1) + (counters.dropped == nil ? 0 : 1)
            let options = count == 0 ? 0 : count * 12 + 4
            try beginBlock(Block.interfaceStatistics, bodyLength: 12 + options) { w in
                w.put32(UInt32(interface))
                w.put32(UInt32(truncatingIfNeeded: units >> 32))
                w.put32(UInt32(truncatingIfNeeded: units))
                if let r = counters.received {
                    w.put16(4)
                    w.put16(8)
                    w.put64(r)
                }  // isb_ifrecv
                if let d = counters.dropped {
                    w.put16(5)
                    w.put16(8)
                    w.put64(d)
                }  // isb_ifdrop
                if options > 0 { w.put32(0) }
            }
        }
        do {
            try flush()
        } catch {
            closed = true
            if ownsDescriptor { _ = Sys.close(fd) }
            throw error
        }
        closed = true
        if ownsDescriptor, case .failure(let failure) = Sys.close(fd) {
            throw error("close failed: \(failure.message)")
        }
    }

    // MARK: - Encoding

    private func error(_ message: String) -> CaptureFileError {
        CaptureFileError(path: path, byteOffset: written + used, message: message)
    }

    private static func padded(_ n: Int) -> Int { (n + 3) & ~3 }
    private static func optionLength(_ valueLength: Int) -> Int { 4 + padded(valueLength) }

    /// Appends type, total length, the body `fill` writes (exactly `bodyLength` bytes), and the total again.
    private func beginBlock(_ type: UInt32, bodyLength: Int, _ fill: (inout Cursor) -> Void) throws(CaptureFileError) {
        guard !closed else { throw error("writer is closed") }
        let total = 12 + bodyLength
        if capacity - used < total { try flush() }
        if capacity < total {
            buffer.deallocate()
            capacity = total
            buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }
        var cursor = Cursor(base: buffer + used, limit: total)
        cursor.put32(type)
        cursor.put32(UInt32(total))
        fill(&cursor)
        cursor.put32(UInt32(total))
        precondition(cursor.offset == total, "pcapng block body length miscounted")
        used += total
    }

    /// Writes little-endian fields into a block whose size was computed beforehand.
    private struct Cursor {
        let base: UnsafeMutableRawPointer
        let limit: Int
        var offset = 0

        mutating func put16(_ v: UInt16) { store(v.littleEndian) }
        mutating func put32(_ v: UInt32) { store(v.littleEndian) }
        mutating func put64(_ v: UInt64) { store(v.littleEndian) }

        private mutating func store<T: FixedWidthInteger>(_ v: T) {
            let size = MemoryLayout<T>.size
            precondition(limit - offset >= size, "pcapng block overflow")
            base.storeBytes(of: v, toByteOffset: offset, as: T.self)
            offset += size
        }

        mutating func zeroPad() {
            while offset % 4 != 0 { store(UInt8(0)) }
        }

        mutating func putBytes(_ bytes: ByteView) {
            let n = bytes.copyBytes(into: UnsafeMutableRawBufferPointer(start: base + offset, count: limit - offset))
            offset += n
            zeroPad()
        }

        mutating func putOption(_ code: UInt16, _ value: String) {
            var value = value
            put16(code)
            put16(UInt16(clamping: value.utf8.count))
            value.withUTF8 { utf8 in
                let n = min(utf8.count, limit - offset)
                guard n > 0, let from = utf8.baseAddress else { return }
                (base + offset).copyMemory(from: from, byteCount: n)
                offset += n
            }
            zeroPad()
        }
    }
}
