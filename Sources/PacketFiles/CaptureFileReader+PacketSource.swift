import PacketWire

extension CaptureFileReader: PacketSource {
    /// Every remaining packet of the file, until `body` returns false.
    public func readPackets(_ body: (PacketRecord) -> Bool) throws -> PacketSourceStatus {
        try forEachPacket(body) ? .end : .more
    }
}
