// libFuzzer target for the packet decoders and the stream table (built by scripts/fuzz.sh, not by SwiftPM).
// The first byte picks the link type; the rest is one captured packet. Every decoded packet also goes through
// the TCP stream table and the text escaper, which see whatever the decoder let through.
import PacketWire
import Timeline

nonisolated(unsafe) var builder = PacketEventBuilder()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let links: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .null, .loop, .raw, .ipv4, .ipv6]
    let link = links[Int(data[0]) % links.count]
    let packet = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let decoded = PacketDecoder.decode(ByteView(packet), linkType: link)
    // The payload the decoder announces must lie inside the captured bytes.
    precondition(decoded.capturedPayloadLength >= 0 && decoded.capturedPayloadLength <= decoded.payloadLength)
    if decoded.capturedPayloadLength > 0 {
        precondition(decoded.payloadOffset + decoded.capturedPayloadLength <= packet.count)
    }
    let captured = CapturedPacket(
        info: CaptureInfo(
            timestamp: Timestamp(seconds: 0, nanoseconds: 0), capturedLength: packet.count,
            originalLength: packet.count, linkType: link),
        bytes: Array(packet))
    let event = builder.event(for: captured)
    return event.frame > 0 ? 0 : 1
}
