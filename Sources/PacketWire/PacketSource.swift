/// One packet as a source hands it over: capture metadata apart from the bytes (gopacket's `CaptureInfo`), the
/// pcapng comments, and its number. `bytes` views the source's buffer and is valid only while the source's
/// `readPackets` body runs.
public struct PacketRecord {
    /// `interfaceIndex` indexes the interfaces the source describes: for a pcapng file, numbered across all its
    /// sections in the order they were described (0 for classic pcap and live capture).
    public var info: CaptureInfo
    public var bytes: ByteView
    /// `opt_comment` options, in file order; empty (and not allocated) when there are none.
    public var comments: [String]
    /// 1 for the first packet of the source.
    public var frameNumber: Int

    public init(info: CaptureInfo, bytes: ByteView, comments: [String] = [], frameNumber: Int) {
        self.info = info
        self.bytes = bytes
        self.comments = comments
        self.frameNumber = frameNumber
    }
}

/// Whether a source can give more packets after a `readPackets` call.
public enum PacketSourceStatus: Sendable, Equatable {
    /// More may come: call again (a live capture always says so until it is closed or broken off).
    case more
    /// The source is exhausted (the end of a file).
    case end
}

/// Where packets come from: a capture file or a live interface (gopacket's `PacketDataSource`). `read` and `capture`
/// each read their source through it into the same `PacketPipeline`, so what `read` prints for a file and `capture`
/// prints for the wire come from one path; code written against the protocol reads either.
public protocol PacketSource: AnyObject {
    /// Hands the packets that are ready to `body`, in order, until `body` returns false. A file hands over all its
    /// packets in one call; a live capture those one wake-up delivers. Throws when the source breaks (a corrupt
    /// record, a capture error) after handing over everything valid before it.
    func readPackets(_ body: (PacketRecord) -> Bool) throws -> PacketSourceStatus
}
