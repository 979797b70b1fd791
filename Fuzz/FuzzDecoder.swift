// libFuzzer target for PacketDecoder and the read path's renderers (built by scripts/fuzz.sh, not by SwiftPM).
// The first byte picks the link type; the rest is one packet. Each input is decoded, tracked by the stream
// table and TCP analyzer, and rendered as a text line (plain, and with tcpdump's display flags, which read much
// more of the bytes) and a JSON object, so no byte pattern may trap anywhere on the way from a capture record to
// output.
import PacketWire
import Render
import Timeline

let linkTypes: [LinkType] = [
    .ethernet, .linuxSLL, .linuxSLL2, .null, .loop, .raw, .dltRaw, .ipv4, .ipv6,
    LinkType(rawValue: 147),
]
nonisolated(unsafe) var builder = PacketEventBuilder()
nonisolated(unsafe) var trackBuilder = PacketEventBuilder()
nonisolated(unsafe) var frame = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let link = linkTypes[Int(data[0]) % linkTypes.count]
    let bytes = ByteView(UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    let decoded = PacketDecoder.decode(bytes, linkType: link)
    // The payload the decoder announces must lie inside the captured bytes.
    precondition(decoded.capturedPayloadLength >= 0 && decoded.capturedPayloadLength <= decoded.payloadLength)
    if decoded.capturedPayloadLength > 0 {
        precondition(decoded.payloadOffset + decoded.capturedPayloadLength <= bytes.count)
    }
    // The conversations fast path peeks at the same bytes; it must agree with the full decode or defer to it.
    if case .flow(let flow) = PacketDecoder.peekFlow(bytes, linkType: link) {
        precondition(flow.source == decoded.source && flow.destination == decoded.destination)
    }
    frame += 1
    // The original length is sometimes below the captured one, so impossible records and IP lengths beyond the
    // wire are rendered too.
    let original = max(0, bytes.count + Int(data[0] & 3) - Int(data[0] >> 6) * 2)
    let info = CaptureInfo(
        timestamp: Timestamp(seconds: Int64(frame), nanoseconds: 0), capturedLength: bytes.count,
        originalLength: original, linkType: link)
    if case .lengthBeyondPacket(let missing, _)? = decoded.problem(capturedAs: info) {
        precondition(missing > 0 && decoded.networkEnd == original + missing)
    }
    // Both paths the commands take: the lab/trace event, and read's allocation-free track.
    let event = builder.event(frame: frame, info: info, decoded: decoded, payload: [])
    var out = OutputBuffer()
    PacketJSON.write(event, into: &out)
    let track = trackBuilder.track(info: info, decoded: decoded)
    var flags = TcpdumpFlags()
    flags.dump = .hexASCII(withLink: true)
    let text = PacketText(absoluteSequence: data[0] & 0x10 != 0, payload: true, flags: flags)
    text.write(track, info: info, decoded: decoded, bytes: bytes, into: &out)
    // tcpdump's display flags read more of the bytes (checksums, quoted datagrams, ND options): all of them at once.
    flags.verbosity = Int(data[0] & 0x03)
    flags.linkHeader = true
    flags.quick = data[0] & 0x04 != 0
    flags.time = .sinceFirst
    flags.numbered = true
    flags.dump = data[0] & 0x08 != 0 ? .hex(withLink: false) : .ascii(withLink: false)
    var state = TcpdumpLineState()
    PacketText(absoluteSequence: true, payload: false, flags: flags)
        .write(track, info: info, decoded: decoded, bytes: bytes, number: frame, state: &state, into: &out)
    PacketJSON.write(frame: frame, track, info: info, decoded: decoded, into: &out)
    return 0
}
