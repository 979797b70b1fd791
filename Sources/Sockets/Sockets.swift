/// Sockets: a thin, typed wrapper over BSD sockets on Linux (`socket(2)`, `connect(2)`, `send(2)`, ...).
///
/// What this module guarantees:
/// - Every system call goes through the package's one seam, SystemCalls' `syscall(_:)`, which reads `errno` before
///   anything else can overwrite it and retries `EINTR`. `close(2)` is the exception: on Linux the descriptor is already released
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
import SystemCalls
