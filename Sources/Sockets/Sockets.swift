/// Sockets: a thin, typed wrapper over BSD sockets on Linux (`socket(2)`, `connect(2)`, `send(2)`, ...).
///
/// What this module guarantees:
/// - Every system call goes through one seam, `syscall(_:)`, which reads `errno` before anything else can
///   overwrite it and retries `EINTR`. `close(2)` is the exception: on Linux the descriptor is already released
///   when `close` reports `EINTR`, so a retry could close a descriptor another thread has just been given.
/// - Failures are thrown as ``Errno`` with its C name ("ECONNREFUSED"), never as a bare `-1`.
/// - A ``Socket`` owns its descriptor: `close()` is explicit and idempotent, `deinit` closes it if still open,
///   and every descriptor is created with `SOCK_CLOEXEC` so a traced or spawned child does not inherit it.
/// - Sending never raises `SIGPIPE`: `send` uses `MSG_NOSIGNAL`, so writing to a reset connection is the error
///   ``Errno/brokenPipe`` ("EPIPE") instead of the death of the process.
///
/// The module imports Glibc, and PacketWire only for the address values it shares with packets (`IPAddress`); it
/// knows nothing about captures or about the lab built on top of it.
import Glibc

/// The one seam every system call in this module goes through.
///
/// `body` must return the C call's raw result; `-1` means failure and `errno` holds the reason. `errno` is read
/// first thing after the call, before any other code (even an allocation) can run and change it.
/// `EINTR` is retried unless `retryOnInterrupt` is false (used for `close(2)` and for `connect(2)`, whose
/// interrupted attempt keeps going in the kernel and must be awaited rather than restarted).
@inline(__always)
@discardableResult
func syscall<Result: FixedWidthInteger>(
    retryOnInterrupt: Bool = true,
    _ body: () -> Result
) throws(Errno) -> Result {
    while true {
        let result = body()
        if result == -1 {
            let error = Errno(rawValue: Glibc.errno)
            if retryOnInterrupt && error == .interrupted { continue }
            throw error
        }
        return result
    }
}
