import PacketWire

/// A live capture as a ``PacketSource``: each read hands over what one `pcap_dispatch` delivers, numbered from 1
/// across reads. A blocking capture waits there for its first packet, however long that takes (the kernel hands
/// over no empty block); a non-blocking one hands over what is ready, for a loop that sleeps in `LiveCapture.wait`.
public final class LivePackets: PacketSource {
    public let capture: LiveCapture
    /// The number of the last packet handed over.
    public private(set) var frameNumber = 0
    /// At most this many packets per read (-1: whatever the kernel has ready).
    public var batch: Int32 = -1

    public init(_ capture: LiveCapture) { self.capture = capture }

    public func readPackets(_ body: (PacketRecord) -> Bool) throws -> PacketSourceStatus {
        var stopped = false
        try capture.dispatch(maxPackets: batch) { info, bytes in
            // pcap_breakloop takes effect after this packet; anything the batch still holds waits for the next read.
            guard !stopped else { return }
            frameNumber += 1
            if !body(PacketRecord(info: info, bytes: bytes, frameNumber: frameNumber)) {
                stopped = true
                capture.breakLoop()
            }
        }
        return .more
    }
}
