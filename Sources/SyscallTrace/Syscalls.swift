/// SyscallTrace: runs a program under ptrace with a seccomp-bpf filter so it stops only at socket-related system
/// calls, follows its descriptors and sockets, and attributes captured packets to the calls that caused them.
///
/// Contract: the tracer itself never traps on what a tracee does. A call it cannot decode is recorded with its raw
/// number; memory it cannot read becomes an empty preview; a tracee that vanishes mid-call ends its record.
import CTraceShims

/// x86_64 system call numbers the tracer decodes (arch/x86/entry/syscalls/syscall_64.tbl).
public enum Syscall: Int, Sendable, CaseIterable {
    case read = 0
    case write = 1
    case close = 3
    case readv = 19
    case writev = 20
    case dup = 32
    case dup2 = 33
    case sendfile = 40
    case socket = 41
    case connect = 42
    case accept = 43
    case sendto = 44
    case recvfrom = 45
    case sendmsg = 46
    case recvmsg = 47
    case shutdown = 48
    case bind = 49
    case listen = 50
    case socketpair = 53
    case setsockopt = 54
    case getsockopt = 55
    case fcntl = 72
    case accept4 = 288
    case dup3 = 292
    case recvmmsg = 299
    case sendmmsg = 307

    public var name: String { "\(self)" }

    /// Calls the seccomp filter sends to the tracer: all of the above.
    public static let traced: [Syscall] = allCases

    /// Calls that are mostly file I/O in real programs: the launch filter traces them only for descriptor numbers
    /// that have been sockets (a filter is added for each new number), so reading and writing files never stops.
    public static let fdGated: [Syscall] = [.read, .write, .close, .readv, .writev]

    /// Calls the launch filter traces whatever their arguments.
    public static let alwaysTraced: [Syscall] = allCases.filter { !fdGated.contains($0) }

    /// Calls that take a descriptor as their first argument and mean nothing for a descriptor that is not a socket.
    var isFileDescriptorIO: Bool {
        switch self {
        case .read, .write, .readv, .writev, .close, .fcntl, .sendfile, .dup, .dup2, .dup3: true
        default: false
        }
    }

    /// Calls whose successful result counts bytes leaving through the socket.
    public var sends: Bool {
        switch self {
        case .write, .writev, .sendto, .sendmsg, .sendfile: true
        default: false
        }
    }

    /// Calls whose successful result counts bytes taken from the socket.
    public var receives: Bool {
        switch self {
        case .read, .readv, .recvfrom, .recvmsg: true
        default: false
        }
    }
}

/// Whether this build can trace: the register layout is decoded for x86_64 only.
public var tracingSupported: Bool { ctrace_supported_architecture() != 0 }
