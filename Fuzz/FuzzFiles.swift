// libFuzzer target for CaptureFileReader (built by scripts/fuzz.sh, not by SwiftPM).
// The input is read from memory through the same buffer and parser as files; a small buffer whose size the
// first byte picks makes the refill/grow paths run too.
import PacketFiles
import PacketWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let bufferSize = size > 0 ? 16 << Int(data[0] & 7) : 16
    guard let reader = try? CaptureFileReader(bytes: input, name: "fuzz", bufferSize: bufferSize) else { return 0 }
    var sum: UInt64 = 0
    do {
        try reader.forEach { record in
            // Touch everything the record claims, through the checked reader.
            precondition(record.bytes.count == record.info.capturedLength)
            precondition(record.info.interfaceIndex < reader.interfaces.count)
            if let first = record.bytes.u8(0), let last = record.bytes.u8(record.bytes.count - 1) {
                sum &+= UInt64(first) &+ UInt64(last)
            }
            sum &+= UInt64(record.comments.count) &+ UInt64(bitPattern: record.info.timestamp.totalNanoseconds)
        }
    } catch {
        precondition(error is CaptureFileError)
    }
    return sum == 0x5EED ? 0 : 0
}
