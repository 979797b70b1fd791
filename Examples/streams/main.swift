// streams: the TCP streams of a capture file, numbered as Wireshark numbers them, with their packets and bytes.
//   swift run streams trace.pcapng
import PacketFiles
import PacketWire
import Timeline

let reader = try CaptureFileReader(path: CommandLine.arguments[1])
var builder = PacketEventBuilder()
var streams: [Int: (first: String, packets: Int, bytes: Int)] = [:]
while let record = try reader.next() {
    let decoded = PacketDecoder.decode(record.bytes, linkType: record.info.linkType)
    let track = builder.track(info: record.info, decoded: decoded)
    guard track.hasStream, let source = decoded.source, let destination = decoded.destination else { continue }
    let ends = "\(source) → \(destination)"
    streams[track.stream, default: (ends, 0, 0)].packets += 1
    streams[track.stream]!.bytes += decoded.payloadLength
}
for (index, s) in streams.sorted(by: { $0.key < $1.key }) {
    print("stream \(index): \(s.first), \(s.packets) packets, \(s.bytes) bytes of payload")
}
