import Glibc

/// The one write loop: all of `buffer`, retrying EINTR and short writes. Returns 0, or the errno that stopped it
/// (EPIPE when the reader has gone).
public func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int32 {
    guard let base = buffer.baseAddress else { return 0 }
    var offset = 0
    while offset < buffer.count {
        let n = write(fd, base + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return errno }
        if n == 0 { return EIO }
        offset += n
    }
    return 0
}

/// "packetflow: TEXT" on stderr.
public func warn(_ text: String) {
    var t = "packetflow: " + text + "\n"
    t.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
