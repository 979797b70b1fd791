// libFuzzer target for the sock_diag reply parser (Sources/Sockets/SocketDiag.swift): the kernel's bytes are
// read through ByteView like a capture's. Built by scripts/fuzz.sh, not by SwiftPM.
import Sockets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let reply = SocketDiag.parseReply(bytes) {
        // Each inet_diag_msg is 72 bytes behind a 16-byte header: no more entries than the bytes can hold.
        precondition(reply.entries.count * 88 <= size)
    }
    return 0
}
