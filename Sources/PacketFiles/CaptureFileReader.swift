import Glibc
import PacketWire

/// Streams the packets of a classic pcap or pcapng file (format told by its magic number).
///
/// Memory stays bounded by the largest record, whatever the file size; see the module's contract.
/// Every valid record is delivered; the first bad one ends the stream with a `CaptureFileError` that
/// names the file and the byte offset of that record (thrown again by later calls).
public final class CaptureFileReader {
    public static let defaultBufferSize = 1 << 20
    /// A record (pcap packet or pcapng block) longer than this is an error, not an allocation.
    public static let maxRecordLength = 256 << 20

    /// The path as given; "stdin" for `-`.
    public let path: String
    public let format: CaptureFileFormat
    /// Interfaces described so far: the pcap header's one, or every pcapng IDB read so far across sections.
    public private(set) var interfaces: [InterfaceInfo] = []
    /// What concerns the whole file and no single packet shows: one line each, naming the file, for the reader's
    /// caller to print (on stderr) once it has read the file. Today: a link type PacketWire does not decode,
    /// once per link type, as its first interface appears.
    public private(set) var warnings: [String] = []
    private var undecodedLinkTypes: Set<LinkType> = []

    private var input: InputBuffer
    private let maxRecord: Int
    private var frameNumber = 0
    private var failure: CaptureFileError?
    // Classic pcap.
    private var pcapBigEndian = false
    private var pcapScale = TimeScale.microseconds
    // pcapng: the current section's byte order, its first interface's index, and per-interface timing.
    private var sectionBigEndian = false
    private var sectionIndex = -1
    private var sectionBase = 0
    private var timing: [InterfaceTiming] = []

    private struct InterfaceTiming {
        var linkType: LinkType
        var snapLength: Int
        var scale: TimeScale
        var offset: Int64
        /// `CaptureInfo.label`, made once per interface rather than per packet.
        var name: InterfaceLabel
    }

    /// Regular files at least this large are read ahead on a second thread (see `init(path:bufferSize:readAhead:)`).
    public static let readAheadThreshold = 8 << 20

    /// Opens `path` ("-" reads standard input) and reads the file header.
    ///
    /// `readAhead`: read the file on a second thread while packets are parsed (`true`), never (`false`), or
    /// when it is a regular file of at least `readAheadThreshold` bytes (nil). Records and errors are the same.
    public convenience init(
        path: String, bufferSize: Int = defaultBufferSize,
        readAhead: Bool? = nil
    ) throws(CaptureFileError) {
        if path == "-" {
            try self.init(source: .descriptor(0, owned: false), name: "stdin", bufferSize: bufferSize)
            return
        }
        switch Sys.open(path, O_RDONLY) {
        case .success(let fd):
            var source = InputSource.descriptor(fd, owned: true)
            if let size = Sys.regularFileSize(fd), readAhead ?? (size >= Self.readAheadThreshold) {
                let r = ReadAhead(fd: fd, chunkSize: bufferSize)
                if r.start() { source = .readAhead(r, fd: fd, owned: true) }
            }
            try self.init(source: source, name: path, bufferSize: bufferSize)
        case .failure(let failure):
            throw CaptureFileError(path: path, byteOffset: 0, message: "cannot open: \(failure.message)")
        }
    }

    /// Reads from an open descriptor, which the reader does not close.
    public convenience init(
        fileDescriptor: Int32, name: String,
        bufferSize: Int = defaultBufferSize
    ) throws(CaptureFileError) {
        try self.init(source: .descriptor(fileDescriptor, owned: false), name: name, bufferSize: bufferSize)
    }

    /// Reads from memory that must stay valid for the reader's lifetime (same code path as files).
    public convenience init(
        bytes: UnsafeRawBufferPointer, name: String,
        bufferSize: Int = defaultBufferSize
    ) throws(CaptureFileError) {
        try self.init(source: .memory(bytes), name: name, bufferSize: bufferSize)
    }

    private init(source: InputSource, name: String, bufferSize: Int) throws(CaptureFileError) {
        path = name
        maxRecord = CaptureFileReader.maxRecordLength
        input = InputBuffer(source: source, capacity: bufferSize, maxCapacity: maxRecord)
        let magic = try Self.fill(&input, 4, name)
        guard magic.count >= 4, let le = magic.view.u32le(0) else {
            let what = magic.count == 0 ? "empty file" : "file too short for a capture header"
            throw CaptureFileError(
                path: name, byteOffset: 0,
                message: "\(what) (needs 4 bytes, \(magic.count) left)")
        }
        switch le {
        case 0xA1B2_C3D4: format = .pcap(nanosecond: false, bigEndian: false)
        case 0xD4C3_B2A1: format = .pcap(nanosecond: false, bigEndian: true)
        case 0xA1B2_3C4D: format = .pcap(nanosecond: true, bigEndian: false)
        case 0x4D3C_B2A1: format = .pcap(nanosecond: true, bigEndian: true)
        case PcapngBlock.sectionHeader: format = .pcapng
        default:
            throw CaptureFileError(
                path: name, byteOffset: 0,
                message: "unknown magic number 0x\(String(le.byteSwapped, radix: 16))"
                    + " (not a pcap or pcapng file)")
        }
        if case .pcap(let nanosecond, let bigEndian) = format {
            pcapBigEndian = bigEndian
            pcapScale = nanosecond ? .nanoseconds : .microseconds
            try readPcapHeader()
        }
        // pcapng: the Section Header Block is read as the first block by `next()`.
    }

    /// Makes `n` bytes available if the input has them; returns how many are available and the view.
    private static func fill(_ input: inout InputBuffer, _ n: Int, _ name: String)
        throws(CaptureFileError) -> (count: Int, view: ByteView)
    {
        switch input.ensure(n) {
        case .success: return (input.available, input.view)
        case .failure(let failure):
            throw CaptureFileError(path: name, byteOffset: input.offset, message: "read failed: \(failure.message)")
        }
    }

    private func fail(_ offset: Int, _ message: String) -> CaptureFileError {
        let error = CaptureFileError(path: path, byteOffset: offset, message: message)
        failure = error
        return error
    }

    /// Warns, once per link type, when PacketWire cannot decode the packets of a new interface: tcpdump names the
    /// link type in its first line, and otherwise every packet would say no more than that it was not decoded.
    private func noteLinkType(_ linkType: LinkType, interface: String?) {
        guard !PacketDecoder.decodes(linkType), undecodedLinkTypes.insert(linkType).inserted else { return }
        warnings.append(
            "\(path): \(interface.map { $0 + ": " } ?? "")\(linkType.tcpdumpName) is not decoded: "
                + "packetflow sees its packets as bytes only")
    }

    // MARK: - Iteration

    /// Calls `body` for each packet; the record's bytes are valid only during the call.
    /// Returns at the end of the file; throws `CaptureFileError` after every valid record before the bad one
    /// was delivered, or whatever `body` throws.
    public func forEach(_ body: (PacketRecord) throws -> Void) throws {
        while let record = try next() { try body(record) }
    }

    /// The next packet, or nil at the end of the file. The record's bytes stay valid until the next call.
    public func next() throws(CaptureFileError) -> PacketRecord? {
        if let failure { throw failure }
        switch format {
        case .pcap: return try nextPcap()
        case .pcapng: return try nextPcapng()
        }
    }

    // MARK: - Classic pcap

    private enum PcapHeader {
        static let length = 24
        static let versionMajor = 4
        static let snapLength = 16
        static let linkType = 20
    }

    private enum PcapRecord {
        static let headerLength = 16
        static let seconds = 0
        static let fraction = 4
        static let capturedLength = 8
        static let originalLength = 12
    }

    private func u16(_ v: ByteView, _ at: Int, big: Bool) -> UInt16? { big ? v.u16(at) : v.u16le(at) }
    private func u32(_ v: ByteView, _ at: Int, big: Bool) -> UInt32? { big ? v.u32(at) : v.u32le(at) }

    private func readPcapHeader() throws(CaptureFileError) {
        let (count, v) = try Self.fill(&input, PcapHeader.length, path)
        let big = pcapBigEndian
        guard count >= PcapHeader.length, let major = u16(v, PcapHeader.versionMajor, big: big),
            let snap = u32(v, PcapHeader.snapLength, big: big), let link = u32(v, PcapHeader.linkType, big: big)
        else {
            throw fail(0, "truncated pcap file header (needs \(PcapHeader.length) bytes, \(count) left)")
        }
        guard major == 2 else { throw fail(0, "unsupported pcap version \(major)") }
        // The upper bits of the link-type field carry FCS information, not the link type.
        interfaces = [
            InterfaceInfo(
                linkType: LinkType(rawValue: link & 0xFFFF), snapLength: Int(snap),
                timestampResolution: pcapScale.resolution)
        ]
        noteLinkType(interfaces[0].linkType, interface: nil)
        input.consume(PcapHeader.length)
    }

    /// What a classic pcap file's header fixed for all its records.
    private struct PcapSettings {
        var bigEndian: Bool
        var scale: TimeScale
        var linkType: LinkType
        var maxRecord: Int
    }

    private var pcapSettings: PcapSettings {
        PcapSettings(
            bigEndian: pcapBigEndian, scale: pcapScale, linkType: interfaces.first?.linkType ?? .ethernet,
            maxRecord: maxRecord)
    }

    /// A record the file got wrong: where it starts and what is wrong with it.
    private struct BadRecord: Error {
        var at: Int
        var message: String
    }

    /// The next classic pcap record, or nil at the end of the input; consumes it from `input` (its bytes stay
    /// valid until the next `ensure`). Static, so it touches no class property: no dynamic exclusivity checks.
    @inline(__always)
    private static func pcapRecord(_ input: inout InputBuffer, _ s: PcapSettings, path: String)
        throws(CaptureFileError) -> Result<PcapRecordFields?, BadRecord>
    {
        let at = input.offset
        let big = s.bigEndian
        @inline(__always) func u32(_ v: ByteView, _ at: Int) -> UInt32? { big ? v.u32(at) : v.u32le(at) }
        var (count, v) = try fill(&input, PcapRecord.headerLength, path)
        if count == 0 { return .success(nil) }
        guard count >= PcapRecord.headerLength, let seconds = u32(v, PcapRecord.seconds),
            let fraction = u32(v, PcapRecord.fraction),
            let captured = u32(v, PcapRecord.capturedLength),
            let original = u32(v, PcapRecord.originalLength)
        else {
            return .failure(
                BadRecord(
                    at: at,
                    message:
                        "truncated packet record header (needs \(PcapRecord.headerLength) bytes, \(count) left)"))
        }
        guard Int(captured) <= s.maxRecord - PcapRecord.headerLength else {
            return .failure(
                BadRecord(
                    at: at,
                    message:
                        "packet record length \(captured) exceeds the maximum \(s.maxRecord)"))
        }
        let total = PcapRecord.headerLength + Int(captured)
        if count < total { (count, v) = try fill(&input, total, path) }
        guard count >= total, let data = v.slice(PcapRecord.headerLength, Int(captured)) else {
            return .failure(BadRecord(at: at, message: "truncated packet record (needs \(total) bytes, \(count) left)"))
        }
        // A fraction of a second past one second (seen in damaged files) carries into the seconds.
        let units = UInt64(seconds) * s.scale.unitsPerSecond + UInt64(fraction)
        input.consume(total)
        return .success(
            PcapRecordFields(
                timestamp: s.scale.timestamp(units), captured: Int(captured),
                original: Int(original), data: data))
    }

    /// What a classic pcap record gives: plain values only, so passing them costs no reference counting (a
    /// `CaptureInfo` carries a name), until the record is made.
    private struct PcapRecordFields {
        var timestamp: Timestamp
        var captured: Int
        var original: Int
        var data: ByteView

        @inline(__always) func record(_ s: PcapSettings, frame: Int) -> PacketRecord {
            PacketRecord(
                info: CaptureInfo(
                    timestamp: timestamp, capturedLength: captured, originalLength: original,
                    interfaceIndex: 0, linkType: s.linkType, label: nil),
                bytes: data, comments: [], frameNumber: frame)
        }
    }

    private func nextPcap() throws(CaptureFileError) -> PacketRecord? {
        switch try Self.pcapRecord(&input, pcapSettings, path: path) {
        case .failure(let bad): throw fail(bad.at, bad.message)
        case .success(nil): return nil
        case .success(let fields?):
            frameNumber += 1
            return fields.record(pcapSettings, frame: frameNumber)
        }
    }

    /// Calls `body` with each packet until it returns false (then returns false) or the input ends (true).
    /// The same records and errors as `next()`, but for classic pcap the loop keeps the reader's state in local
    /// variables, so a record costs no class-property access; the record's bytes are valid only during `body`.
    public func forEachPacket(_ body: (PacketRecord) -> Bool) throws(CaptureFileError) -> Bool {
        if let failure { throw failure }
        guard case .pcap = format else {
            while let record = try next() {
                if !body(record) { return false }
            }
            return true
        }
        let settings = pcapSettings
        var local = InputBuffer(
            source: .memory(UnsafeRawBufferPointer(start: nil, count: 0)), capacity: 16,
            maxCapacity: 16)
        swap(&local, &input)
        var frame = frameNumber
        var outcome: Result<Bool, BadRecord> = .success(true)
        var readError: CaptureFileError?
        loop: while true {
            do throws(CaptureFileError) {
                switch try Self.pcapRecord(&local, settings, path: path) {
                case .failure(let bad):
                    outcome = .failure(bad)
                    break loop
                case .success(nil):
                    break loop
                case .success(let fields?):
                    frame += 1
                    if !body(fields.record(settings, frame: frame)) {
                        outcome = .success(false)
                        break loop
                    }
                }
            } catch {
                readError = error
                break loop
            }
        }
        swap(&local, &input)
        frameNumber = frame
        if let readError { throw readError }
        switch outcome {
        case .success(let more): return more
        case .failure(let bad): throw fail(bad.at, bad.message)
        }
    }

    // MARK: - pcapng

    private enum PcapngBlock {
        static let sectionHeader: UInt32 = 0x0A0D_0D0A
        static let interfaceDescription: UInt32 = 1
        static let packet: UInt32 = 2  // obsolete
        static let simplePacket: UInt32 = 3
        static let interfaceStatistics: UInt32 = 5
        static let enhancedPacket: UInt32 = 6
        static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
        /// Type and total length before the body, total length again after it.
        static let overhead = 12
        static let bodyOffset = 8
    }

    private enum Option {
        static let endOfOptions: UInt16 = 0
        static let comment: UInt16 = 1
        static let ifName: UInt16 = 2
        static let ifTsresol: UInt16 = 9
        static let ifTsoffset: UInt16 = 14
        static let isbIfrecv: UInt16 = 4
        static let isbIfdrop: UInt16 = 5
    }

    private func nextPcapng() throws(CaptureFileError) -> PacketRecord? {
        while true {
            let at = input.offset
            var (count, v) = try Self.fill(&input, PcapngBlock.overhead, path)
            if count == 0 { return nil }
            guard count >= PcapngBlock.overhead, let typeLE = v.u32le(0) else {
                throw fail(at, "truncated block header (needs \(PcapngBlock.overhead) bytes, \(count) left)")
            }
            var big = sectionBigEndian
            if typeLE == PcapngBlock.sectionHeader {
                // A new section may switch byte order; its byte-order magic says which.
                switch v.u32le(8) {
                case PcapngBlock.byteOrderMagic: big = false
                case PcapngBlock.byteOrderMagic.byteSwapped: big = true
                default: throw fail(at, "section header with a bad byte-order magic")
                }
            } else if sectionIndex < 0 {
                throw fail(at, "pcapng block before the first section header")
            }
            guard let type = u32(v, 0, big: big), let length32 = u32(v, 4, big: big) else {
                throw fail(at, "truncated block header")
            }
            let length = Int(length32)
            guard length >= PcapngBlock.overhead, length % 4 == 0 else {
                throw fail(at, "invalid block length \(length)")
            }
            guard length <= maxRecord else {
                throw fail(at, "block length \(length) exceeds the maximum \(maxRecord)")
            }
            (count, v) = try Self.fill(&input, length, path)
            guard count >= length else {
                throw fail(at, "truncated block (needs \(length) bytes, \(count) left)")
            }
            guard let trailer = u32(v, length - 4, big: big), Int(trailer) == length,
                let body = v.slice(PcapngBlock.bodyOffset, length - PcapngBlock.overhead)
            else {
                throw fail(at, "block's trailing length does not match its length \(length)")
            }
            var record: PacketRecord?
            switch type {
            case PcapngBlock.sectionHeader: try readSectionHeader(body, big: big, at: at)
            case PcapngBlock.interfaceDescription: try readInterfaceDescription(body, at: at)
            case PcapngBlock.enhancedPacket: record = try readPacketBlock(body, at: at, obsolete: false)
            case PcapngBlock.simplePacket: record = try readSimplePacket(body, at: at)
            case PcapngBlock.packet: record = try readPacketBlock(body, at: at, obsolete: true)
            case PcapngBlock.interfaceStatistics: try readInterfaceStatistics(body, at: at)
            default: break  // Name resolution, custom, decryption secrets and unknown blocks.
            }
            input.consume(length)
            if let record { return record }
        }
    }

    private func readSectionHeader(_ body: ByteView, big: Bool, at: Int) throws(CaptureFileError) {
        // byte-order magic (4), major (2), minor (2), section length (8), options
        guard let major = u16(body, 4, big: big), body.has(8, 8) else {
            throw fail(at, "section header block too short")
        }
        guard major == 1 else { throw fail(at, "unsupported pcapng version \(major)") }
        sectionBigEndian = big
        sectionIndex += 1
        sectionBase = timing.count
    }

    private func readInterfaceDescription(_ body: ByteView, at: Int) throws(CaptureFileError) {
        let big = sectionBigEndian
        guard let link = u16(body, 0, big: big), let snap = u32(body, 4, big: big) else {
            throw fail(at, "interface description block too short")
        }
        var info = InterfaceInfo(
            linkType: LinkType(rawValue: UInt32(link)), snapLength: Int(snap),
            section: sectionIndex)
        var scale = TimeScale.microseconds
        var badOption: String?
        try forEachOption(body, from: 8, at: at) { code, value in
            switch code {
            case Option.ifName:
                info.name = String(decoding: value.copyBytes(), as: UTF8.self)
            case Option.ifTsresol:
                guard let raw = value.u8(0), let s = TimeScale(tsresol: raw) else {
                    badOption = "unsupported if_tsresol"
                    return
                }
                scale = s
            case Option.ifTsoffset:
                guard let raw = big ? value.u64(0) : value.u64le(0) else {
                    badOption = "if_tsoffset shorter than 8 bytes"
                    return
                }
                info.timestampOffset = Int64(bitPattern: raw)
            default: break
            }
        }
        if let badOption { throw fail(at, badOption) }
        info.timestampResolution = scale.resolution
        interfaces.append(info)
        let described = "interface \(interfaces.count - 1)" + (info.name.map { " (\($0))" } ?? "")
        noteLinkType(info.linkType, interface: described)
        let label = InterfaceLabel(info.name ?? "#\(interfaces.count - 1)")
        timing.append(
            InterfaceTiming(
                linkType: info.linkType, snapLength: info.snapLength, scale: scale,
                offset: info.timestampOffset, name: label))
    }

    /// The global interface index of section-local interface `id`.
    private func interface(_ id: UInt32, at: Int) throws(CaptureFileError) -> Int {
        guard Int(id) < timing.count - sectionBase else {
            throw fail(at, "packet for interface \(id), which the section has not described")
        }
        return sectionBase + Int(id)
    }

    /// An Enhanced Packet Block, or the obsolete Packet Block (`obsolete`), which differs only in a 16-bit
    /// interface id followed by a drops count where the EPB has a 32-bit id:
    /// interface id, timestamp high (4), low (4), captured length (4), original length (4), data, options.
    private func readPacketBlock(_ body: ByteView, at: Int, obsolete: Bool) throws(CaptureFileError) -> PacketRecord {
        let big = sectionBigEndian
        let id = obsolete ? u16(body, 0, big: big).map(UInt32.init) : u32(body, 0, big: big)
        guard let id, let high = u32(body, 4, big: big), let low = u32(body, 8, big: big),
            let captured = u32(body, 12, big: big), let original = u32(body, 16, big: big)
        else { throw fail(at, obsolete ? "packet block too short" : "enhanced packet block too short") }
        guard let data = body.slice(20, Int(captured)) else {
            throw fail(at, "captured length \(captured) overruns its block (\(body.count - 20) bytes of data)")
        }
        let index = try interface(id, at: at)
        let comments = try readComments(body, from: 20 + Self.padded(Int(captured)), at: at)
        return packet(
            index, units: UInt64(high) << 32 | UInt64(low), data: data, original: Int(original),
            comments: comments)
    }

    private func readSimplePacket(_ body: ByteView, at: Int) throws(CaptureFileError) -> PacketRecord {
        // original length (4), data: as much as the block holds, cut to interface 0's snap length.
        guard let original = u32(body, 0, big: sectionBigEndian) else {
            throw fail(at, "simple packet block too short")
        }
        let index = try interface(0, at: at)
        var captured = min(Int(original), body.count - 4)
        let snap = timing[index].snapLength
        if snap > 0 { captured = min(captured, snap) }
        guard let data = body.slice(4, captured) else { throw fail(at, "simple packet block too short") }
        // A Simple Packet Block has no timestamp: it reads as the epoch, without the interface's if_tsoffset.
        var record = packet(index, units: 0, data: data, original: Int(original), comments: [])
        record.info.timestamp = Timestamp(seconds: 0, nanoseconds: 0)
        return record
    }

    private func readInterfaceStatistics(_ body: ByteView, at: Int) throws(CaptureFileError) {
        // interface id (4), timestamp high (4), low (4), options
        let big = sectionBigEndian
        guard let id = u32(body, 0, big: big), body.has(4, 8) else {
            throw fail(at, "interface statistics block too short")
        }
        let index = try interface(id, at: at)
        var received: UInt64?
        var dropped: UInt64?
        try forEachOption(body, from: 12, at: at) { code, value in
            switch code {
            case Option.isbIfrecv: received = big ? value.u64(0) : value.u64le(0)
            case Option.isbIfdrop: dropped = big ? value.u64(0) : value.u64le(0)
            default: break
            }
        }
        if let received { interfaces[index].received = received }
        if let dropped { interfaces[index].dropped = dropped }
    }

    private func packet(
        _ index: Int, units: UInt64, data: ByteView, original: Int,
        comments: [String]
    ) -> PacketRecord {
        let t = timing[index]
        frameNumber += 1
        return PacketRecord(
            info: CaptureInfo(
                timestamp: t.scale.timestamp(units, offsetSeconds: t.offset),
                capturedLength: data.count, originalLength: original, interfaceIndex: index,
                linkType: t.linkType, label: t.name),
            bytes: data, comments: comments, frameNumber: frameNumber)
    }

    private static func padded(_ n: Int) -> Int { (n + 3) & ~3 }

    private func readComments(_ body: ByteView, from: Int, at: Int) throws(CaptureFileError) -> [String] {
        var comments: [String] = []
        try forEachOption(body, from: from, at: at) { code, value in
            if code == Option.comment { comments.append(String(decoding: value.copyBytes(), as: UTF8.self)) }
        }
        return comments
    }

    /// Walks the options from `from` to the end of `body` (or `opt_endofopt`).
    private func forEachOption(
        _ body: ByteView, from: Int, at: Int,
        _ visit: (UInt16, ByteView) -> Void
    ) throws(CaptureFileError) {
        let big = sectionBigEndian
        var offset = from
        while body.has(offset, 4) {
            guard let code = u16(body, offset, big: big), let length = u16(body, offset + 2, big: big) else { return }
            if code == Option.endOfOptions { return }
            guard let value = body.slice(offset + 4, Int(length)) else {
                throw fail(at, "option \(code) of \(length) bytes overruns its block")
            }
            visit(code, value)
            offset += 4 + Self.padded(Int(length))
        }
    }
}
