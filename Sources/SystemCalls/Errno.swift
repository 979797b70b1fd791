import CSystem
import Glibc

/// A C `errno` value as a Swift error, named the way the C headers name it.
///
/// `Errno` compares by its raw value, prints as `ECONNREFUSED (Connection refused)`, and keeps values it has no
/// name for (``name`` is then `E<number>`), so nothing reported by the kernel is lost.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    /// The raw `errno` value.
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The C name of the value ("ECONNREFUSED"), or "E<number>" when it has none in our table.
    public var name: String {
        Errno.names[rawValue] ?? "E\(rawValue)"
    }

    /// The C library's text for the value, e.g. "Connection refused" (`strerrordesc_np(3)`: a constant table, so
    /// any thread may ask, unlike `strerror`, whose buffer is shared).
    public var message: String {
        guard let text = csys_errno_text(rawValue) else { return "Unknown error \(rawValue)" }
        return String(cString: text)
    }

    public var description: String {
        "\(name) (\(message))"
    }
}

extension Errno {
    public static let permissionDenied = Errno(rawValue: EPERM)
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let accessDenied = Errno(rawValue: EACCES)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let notSocket = Errno(rawValue: ENOTSOCK)
    public static let addressFamilyNotSupported = Errno(rawValue: EAFNOSUPPORT)
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    public static let addressNotAvailable = Errno(rawValue: EADDRNOTAVAIL)
    public static let networkDown = Errno(rawValue: ENETDOWN)
    public static let networkUnreachable = Errno(rawValue: ENETUNREACH)
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let isConnected = Errno(rawValue: EISCONN)
    public static let notConnected = Errno(rawValue: ENOTCONN)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let hostUnreachable = Errno(rawValue: EHOSTUNREACH)
    public static let alreadyInProgress = Errno(rawValue: EALREADY)
    public static let nowInProgress = Errno(rawValue: EINPROGRESS)
}

extension Errno {
    // EWOULDBLOCK == EAGAIN and EDEADLOCK == EDEADLK on Linux: one name each.
    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST",
        EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
        ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
        ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE", EDOM: "EDOM", ERANGE: "ERANGE",
        EDEADLK: "EDEADLK", ENAMETOOLONG: "ENAMETOOLONG", ENOLCK: "ENOLCK", ENOSYS: "ENOSYS",
        ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENOMSG: "ENOMSG", ENODATA: "ENODATA", ETIME: "ETIME",
        EPROTO: "EPROTO", EOVERFLOW: "EOVERFLOW", EBADMSG: "EBADMSG", EILSEQ: "EILSEQ",
        ENOTSOCK: "ENOTSOCK", EDESTADDRREQ: "EDESTADDRREQ", EMSGSIZE: "EMSGSIZE", EPROTOTYPE: "EPROTOTYPE",
        ENOPROTOOPT: "ENOPROTOOPT", EPROTONOSUPPORT: "EPROTONOSUPPORT", ESOCKTNOSUPPORT: "ESOCKTNOSUPPORT",
        EOPNOTSUPP: "EOPNOTSUPP", EPFNOSUPPORT: "EPFNOSUPPORT", EAFNOSUPPORT: "EAFNOSUPPORT",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN",
        ENETUNREACH: "ENETUNREACH", ENETRESET: "ENETRESET", ECONNABORTED: "ECONNABORTED",
        ECONNRESET: "ECONNRESET", ENOBUFS: "ENOBUFS", EISCONN: "EISCONN", ENOTCONN: "ENOTCONN",
        ESHUTDOWN: "ESHUTDOWN", ETOOMANYREFS: "ETOOMANYREFS", ETIMEDOUT: "ETIMEDOUT",
        ECONNREFUSED: "ECONNREFUSED", EHOSTDOWN: "EHOSTDOWN", EHOSTUNREACH: "EHOSTUNREACH",
        EALREADY: "EALREADY", EINPROGRESS: "EINPROGRESS", ESTALE: "ESTALE", EDQUOT: "EDQUOT",
        ECANCELED: "ECANCELED", EOWNERDEAD: "EOWNERDEAD", ENOTRECOVERABLE: "ENOTRECOVERABLE",
    ]
}
