/// PacketFiles reads classic pcap and pcapng captures and writes pcapng.
///
/// ## The contract
/// - **Streaming, bounded memory.** `CaptureFileReader` reads with large `read(2)` calls into one reusable
///   buffer that grows only as far as one record needs (never past `maxRecordLength`), and only as bytes
///   actually arrive, so a hostile length field cannot make it allocate more than the input really holds.
/// - **One checked path.** Every byte of file input is read through `PacketWire.ByteView`; nothing here
///   indexes a raw buffer, and length fields are checked before any arithmetic that could overflow.
/// - **Valid records first, then one error.** The reader delivers every record that parses, then throws a
///   `CaptureFileError` naming the file and the byte offset of the first bad record; it never traps.
/// - **Exact time.** Timestamps are converted to nanoseconds with integer arithmetic only (exact for every
///   resolution up to nanoseconds; finer resolutions are truncated to the nanosecond).
/// - **No per-packet allocation** on the read path: a record is a view into the buffer; comments allocate
///   only when a packet has some.
import PacketWire

/// Why a capture file could not be read or written: which file, where, and what was wrong.
public struct CaptureFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path as the caller gave it ("stdin" for `-`).
    public var path: String
    /// Offset in the file of the record (or header) that was bad; for write errors, bytes written so far.
    public var byteOffset: Int
    public var message: String

    public init(path: String, byteOffset: Int, message: String) {
        self.path = path
        self.byteOffset = byteOffset
        self.message = message
    }

    /// "x.pcap: byte 1234: truncated packet record (needs 60 bytes, 12 left)"
    public var description: String { "\(path): byte \(byteOffset): \(message)" }
}

/// The container format, detected from the file's first four bytes.
public enum CaptureFileFormat: Equatable, Sendable {
    /// Classic libpcap: microsecond (`a1b2c3d4`) or nanosecond (`a1b23c4d`) timestamps, in either byte order.
    case pcap(nanosecond: Bool, bigEndian: Bool)
    case pcapng
}

/// How finely an interface's timestamps are counted (pcapng `if_tsresol`).
public enum TimestampResolution: Equatable, Sendable {
    /// Units of 10^-n seconds (6 = microseconds, the pcapng default; 9 = nanoseconds).
    case powerOf10(Int)
    /// Units of 2^-n seconds.
    case powerOf2(Int)
}

/// What a capture says about one interface (a pcapng Interface Description Block, or a pcap file header).
public struct InterfaceInfo: Equatable, Sendable {
    public var linkType: LinkType
    /// 0 means no limit.
    public var snapLength: Int
    /// `if_name`, when the file gives one.
    public var name: String?
    public var timestampResolution: TimestampResolution
    /// `if_tsoffset`: seconds added to every timestamp of this interface.
    public var timestampOffset: Int64
    /// `isb_ifrecv` / `isb_ifdrop` from the latest Interface Statistics Block for this interface, if any.
    public var received: UInt64?
    public var dropped: UInt64?
    /// Which pcapng section (from 0) described the interface; 0 for classic pcap.
    public var section: Int

    public init(
        linkType: LinkType, snapLength: Int, name: String? = nil,
        timestampResolution: TimestampResolution = .powerOf10(6), timestampOffset: Int64 = 0,
        received: UInt64? = nil, dropped: UInt64? = nil, section: Int = 0
    ) {
        self.linkType = linkType
        self.snapLength = snapLength
        self.name = name
        self.timestampResolution = timestampResolution
        self.timestampOffset = timestampOffset
        self.received = received
        self.dropped = dropped
        self.section = section
    }
}
