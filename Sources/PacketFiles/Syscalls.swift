import Glibc

/// The one seam for the file system calls PacketFiles makes: retries `EINTR` (never for `close`) and
/// captures `errno` before anything else can change it.
enum Sys {
    struct Failure: Error {
        let errno: Int32
        var message: String { String(cString: strerror(errno)) }
    }

    /// `open(2)`.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Result<Int32, Failure> {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return .success(fd) }
            let e = Glibc.errno
            if e != EINTR { return .failure(Failure(errno: e)) }
        }
    }

    /// `read(2)`: bytes read, 0 at end of input.
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Failure> {
        while true {
            let n = Glibc.read(fd, buffer, count)
            if n >= 0 { return .success(n) }
            let e = Glibc.errno
            if e != EINTR { return .failure(Failure(errno: e)) }
        }
    }

    /// `write(2)` until every byte is written.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Result<Void, Failure> {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, buffer + done, count - done)
            if n > 0 {
                done += n
            } else if n < 0 {
                let e = Glibc.errno
                if e != EINTR { return .failure(Failure(errno: e)) }
            }
        }
        return .success(())
    }

    /// `fstat(2)`: the size of a regular file, nil for pipes, terminals and anything `fstat` cannot tell.
    static func regularFileSize(_ fd: Int32) -> Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// `close(2)`, not retried: on Linux the descriptor is gone even when it reports `EINTR`.
    static func close(_ fd: Int32) -> Result<Void, Failure> {
        Glibc.close(fd) == 0 ? .success(()) : .failure(Failure(errno: Glibc.errno))
    }
}
