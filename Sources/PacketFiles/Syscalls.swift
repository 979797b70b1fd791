import Glibc
import SystemCalls

/// The file system calls PacketFiles makes, as results rather than throws (the reader hands a failure to the thread
/// that reads ahead and back), over the package's one seam: `EINTR` retried (never for `close`), `errno` captured
/// at once, and its text thread-safe (the read-ahead thread may describe a failure).
enum Sys {
    typealias Failure = Errno

    /// `open(2)`, close-on-exec.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Result<Int32, Failure> {
        Result { () throws(Errno) in try FileDescriptor.open(path, flags, mode: mode).rawValue }
    }

    /// `read(2)`: bytes read, 0 at end of input.
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Failure> {
        Result { () throws(Errno) in
            try FileDescriptor(rawValue: fd).read(into: UnsafeMutableRawBufferPointer(start: buffer, count: count))
        }
    }

    /// `write(2)` until every byte is written.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Result<Void, Failure> {
        Result { () throws(Errno) in
            try FileDescriptor(rawValue: fd).writeAll(UnsafeRawBufferPointer(start: buffer, count: count))
        }
    }

    /// `fstat(2)`: the size of a regular file, nil for pipes, terminals and anything `fstat` cannot tell.
    static func regularFileSize(_ fd: Int32) -> Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// `close(2)`, not retried: on Linux the descriptor is gone even when it reports `EINTR`.
    static func close(_ fd: Int32) -> Result<Void, Failure> {
        Result { () throws(Errno) in try FileDescriptor(rawValue: fd).close() }
    }
}
