/// SystemCalls: the package's one layer over the C library for system calls.
///
/// What it guarantees:
/// - Every call made through ``syscall(retryOnInterrupt:_:)`` reads `errno` before anything else can run and change
///   it, retries `EINTR` (never for `close(2)`, whose descriptor is gone even when it reports `EINTR`), and throws
///   an ``Errno`` with its C name, never a bare `-1`.
/// - ``Errno/message`` is thread-safe (a constant table, not `strerror`'s shared buffer), so any thread (the capture
///   file's read-ahead, the capture thread) may describe an error.
/// - The GNU and Linux-only calls and constants (`accept4`, `pipe2`, `setns`, `unshare`, `pidfd_open`,
///   `pidfd_getfd`, `POLLRDHUP`, `CLONE_NEWNET`, the `NETLINK_*` protocols...) come from one C shim built with
///   `_GNU_SOURCE` (CSystem), through ``Linux``: no symbol looked up by name, no value copied from a header by hand.
/// - ``FileDescriptor`` and ``ProcessID`` are typed, so a descriptor is never passed where a pid is expected.
import CSystem
import Glibc

/// The one seam for system calls. `body` returns the C call's raw result; `-1` means failure and `errno` holds the
/// reason, read first thing after the call. `EINTR` is retried unless `retryOnInterrupt` is false (for `close(2)`,
/// and for `connect(2)`, whose interrupted attempt goes on in the kernel and must be awaited, not restarted).
@inline(__always)
@discardableResult
public func syscall<Result: FixedWidthInteger>(
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

/// An open file descriptor of this process.
public struct FileDescriptor: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: STDIN_FILENO)
    public static let standardOutput = FileDescriptor(rawValue: STDOUT_FILENO)
    public static let standardError = FileDescriptor(rawValue: STDERR_FILENO)

    /// `open(2)`, always close-on-exec.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try syscall { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// `read(2)`: the bytes read, 0 at the end of the input.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try syscall { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// `write(2)` until every byte is written (short writes and `EINTR` continue).
    public func writeAll(_ buffer: UnsafeRawBufferPointer) throws(Errno) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = try syscall { Glibc.write(rawValue, base + done, buffer.count - done) }
            if n == 0 { throw Errno(rawValue: EIO) }
            done += n
        }
    }

    /// `close(2)`, not retried.
    public func close() throws(Errno) {
        try syscall(retryOnInterrupt: false) { Glibc.close(rawValue) }
    }

    public var description: String { "fd \(rawValue)" }
}

/// A process (or, for the calls that take one, thread) id.
public struct ProcessID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: pid_t
    public init(rawValue: pid_t) { self.rawValue = rawValue }

    /// This process.
    public static var current: ProcessID { ProcessID(rawValue: getpid()) }

    public var description: String { String(rawValue) }
}

/// The GNU and Linux-only calls and constants, typed.
public enum Linux {
    /// `accept4(2)`.
    public static func accept4(
        _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?,
        _ flags: Int32
    ) -> Int32 { csys_accept4(fd, address, length, flags) }

    /// `pipe2(2)`.
    public static func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 { csys_pipe2(fds, flags) }

    /// `setns(2)`.
    public static func setns(_ fd: Int32, _ type: Int32) -> Int32 { csys_setns(fd, type) }

    /// `unshare(2)`.
    public static func unshare(_ flags: Int32) -> Int32 { csys_unshare(flags) }

    /// `pidfd_open(2)`; `thread` opens one thread (PIDFD_THREAD, Linux 6.9+) rather than its process.
    public static func pidfdOpen(_ pid: ProcessID, thread: Bool = false) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try syscall { csys_pidfd_open(pid.rawValue, thread ? 1 : 0) })
    }

    /// `pidfd_getfd(2)`: a duplicate in this process of descriptor `fd` of the process `pidfd` names.
    public static func pidfdGetfd(_ pidfd: FileDescriptor, _ fd: Int32) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try syscall { csys_pidfd_getfd(pidfd.rawValue, fd) })
    }

    public static let POLLRDHUP: Int16 = csys_POLLRDHUP
    public static let CLONE_NEWNET: Int32 = csys_CLONE_NEWNET
    public static let NETLINK_ROUTE: Int32 = csys_NETLINK_ROUTE
    public static let NETLINK_SOCK_DIAG: Int32 = csys_NETLINK_SOCK_DIAG
}

extension Linux {
    /// Unblocks `signals` for this thread: a parent may have started us with them blocked (some test runners and
    /// daemons do), and Ctrl-C must still reach a handler.
    public static func unblock(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Where temporary files go: $TMPDIR when set and not empty, else /tmp.
    public static var temporaryDirectory: String {
        getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    /// Calls `body` with `command` and `environment` as the NULL-terminated C arrays execve(2) takes ("KEY=value"
    /// for the environment), freed after.
    public static func withExecArrays<R>(
        _ command: [String], _ environment: [String: String],
        _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>)
            -> R
    ) -> R {
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        var env: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in env { free(p) }
        }
        return argv.withUnsafeMutableBufferPointer { a in
            env.withUnsafeMutableBufferPointer { e in body(a.baseAddress!, e.baseAddress!) }
        }
    }

    /// This process's environment (`environ`) as a dictionary: what a launched command inherits by default.
    public static func environment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}
