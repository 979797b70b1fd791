import CTraceShims
import Glibc
import PacketWire
import Sockets
import SystemCalls

/// Everything the ptrace engine asks of the kernel: waiting for stops, ptrace requests, registers, the tracees'
/// memory, duplicates of their descriptors and what those are, /proc, signals and the clock.
///
/// The stop loop, the socket table and the syscall decoder reach the traced processes only through this, so a
/// scripted kernel drives every branch of the stop loop (a fork event before the child's first stop, a restarted
/// call, a signal during a filter injection, a detach) in unit tests, without root and without a real tracee.
/// ``LinuxKernel`` is the real one. Calls report failure with an ``Errno`` (nil when done); nothing here throws.
protocol PtraceKernel: AnyObject {
    // MARK: processes and ptrace

    /// fork + exec of `command` with PTRACE_TRACEME and, before the exec, `filter` installed as a seccomp-bpf
    /// filter (see `ctrace_spawn_traced`). The child stops itself with SIGSTOP before installing the filter.
    func spawnTraced(_ command: [String], environment: [String: String], filter: LaunchFilter) -> Result<Int32, Errno>
    /// waitpid(2) with __WALL for `pid` (-1: any tracee).
    func wait(_ pid: Int32) -> WaitResult
    /// One ptrace(2) request on `tid`; nil when it was done.
    func ptrace(_ request: PtraceRequest, _ tid: Int32) -> Errno?
    /// PTRACE_GETEVENTMSG: the new thread's id at a fork/vfork/clone event; nil when it cannot be read.
    func eventMessage(_ tid: Int32) -> UInt?
    /// PTRACE_GETREGS at a syscall stop.
    func registers(_ tid: Int32) -> SyscallRegisters?
    /// PTRACE_SETREGS that turns the call at its entry stop into no call returning `result`.
    func skipSyscall(_ tid: Int32, returning result: Int64)
    /// At a syscall-exit-stop: saves the registers and rewinds the thread onto its `syscall` instruction as a
    /// seccomp(2) call that adds a filter tracing the `gated` calls on the descriptors `fds` (ctrace_inject_filter).
    func injectFilter(_ tid: Int32, gated: [Int32], fds: [Int32]) -> Result<SavedRegisters, Errno>
    /// Puts registers saved by ``injectFilter(_:gated:fds:)`` back.
    func restoreRegisters(_ tid: Int32, _ saved: SavedRegisters)
    /// Reads the tracee's memory into `buffer`: the bytes read (fewer at unmapped memory), or -1.
    func readMemory(_ pid: Int32, at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// kill(2); signal 0 only asks whether the process exists.
    func kill(_ pid: Int32, _ signal: Int32) -> Errno?
    /// tgkill(2): a signal for one thread.
    func tgkill(_ tgid: Int32, _ tid: Int32, _ signal: Int32) -> Errno?

    // MARK: the tracees' descriptors, through duplicates of our own

    /// pidfd_open(2) of a process, or of one thread with PIDFD_THREAD (Linux 6.9; EINVAL before).
    func pidfdOpen(_ pid: Int32, thread: Bool) -> Result<Int32, Errno>
    /// pidfd_getfd(2): a duplicate, in this process, of descriptor `fd` of the process behind `pidfd`.
    func pidfdGetfd(_ pidfd: Int32, _ fd: Int32) -> Result<Int32, Errno>
    /// close(2) of a descriptor of ours (a pidfd or a duplicate).
    func close(_ fd: Int32)
    /// fstat(2) of a descriptor of ours: a socket (by inode) or something else; nil when fstat fails.
    func identify(_ fd: Int32) -> FDEntry?
    /// getsockopt(2) of an int option (SO_DOMAIN, SO_TYPE) on a descriptor of ours; nil when it fails.
    func intOption(_ fd: Int32, level: Int32, _ option: Int32) -> Int32?
    /// getsockname(2) (or getpeername(2) when `peer`) on a descriptor of ours: nil when it fails or is not IP.
    func address(_ fd: Int32, peer: Bool) -> SocketAddress?
    /// The state from TCP_INFO on a descriptor of ours.
    func tcpState(_ fd: Int32) -> TCPState?

    // MARK: /proc and the kernel's socket tables

    /// readlink(2) of /proc/PID/fd/N ("socket:[inode]", a path, "pipe:[n]"); nil when the number is not open.
    func descriptorLink(_ pid: Int32, _ fd: Int32) -> String?
    /// The numbers in /proc/PID/fd.
    func descriptorNumbers(_ pid: Int32) -> [Int32]
    /// The thread ids in /proc/PID/task.
    func threadIDs(_ pid: Int32) -> [Int32]
    /// /proc/PID/comm without its newline.
    func command(_ pid: Int32) -> String?
    /// The fields of /proc/PID/status the tracer reads; nil when the process is gone.
    func status(_ pid: Int32) -> ProcessStatus?
    /// A socket found by inode in the TCP/UDP tables of the network namespace `pid` is in (sock_diag or
    /// /proc/PID/net), for when its descriptor cannot be duplicated.
    func kernelSocket(inode: UInt64, inNetworkOf pid: Int32) -> KernelSocket?
    /// Sockets of ours that a launched program would inherit (open without close-on-exec).
    func inheritedSockets() -> [Int32]
    /// The wall clock, for the calls' start and end.
    func now() -> Timestamp
}

/// A socket as the kernel's tables show it: both ends and the TCP state, its family and type.
typealias KernelSocket = (entry: KernelTCPTable.Entry, family: Int32, type: Int32)

/// What a launched program's seccomp filter traces: the call numbers `always`, and the `gated` ones only when
/// their first argument is one of `fds`.
struct LaunchFilter: Equatable, Sendable {
    var always: [Int32]
    var gated: [Int32]
    var fds: [Int32]
}

/// One waitpid(2) answer.
enum WaitResult: Equatable, Sendable {
    case report(tid: Int32, WaitStatus)
    /// EINTR: a signal (Ctrl-C) arrived while waiting.
    case interrupted
    /// ECHILD or another failure: nothing is left to wait for.
    case noChildren
}

/// A waitpid(2) status, decoded.
enum WaitStatus: Equatable, Sendable {
    case exited(Int32)
    case killed(by: Int32)
    /// A ptrace stop: the stop signal (SIGTRAP | 0x80 at a syscall stop, with PTRACE_O_TRACESYSGOOD) and the
    /// PTRACE_EVENT_* in the status's high bits (0 for none).
    case stopped(signal: Int32, event: Int32)

    init(raw status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            self = .exited((status >> 8) & 0xff)
        } else if low != 0x7f {
            self = .killed(by: low)
        } else {
            self = .stopped(signal: (status >> 8) & 0xff, event: status >> 16)
        }
    }

    /// A syscall-entry or -exit stop (PTRACE_SYSCALL with PTRACE_O_TRACESYSGOOD).
    static let syscall = WaitStatus.stopped(signal: SIGTRAP | 0x80, event: 0)
    /// The entry of a call the seccomp filter sends to the tracer.
    static let seccomp = WaitStatus.stopped(signal: SIGTRAP, event: PT.eventSeccomp)
    /// A signal-delivery-stop for `signal` (or a group-stop of a program traced without PTRACE_SEIZE).
    static func signal(_ signal: Int32) -> WaitStatus { .stopped(signal: signal, event: 0) }
    /// A PTRACE_EVENT_* stop.
    static func event(_ event: Int32, signal: Int32 = SIGTRAP) -> WaitStatus { .stopped(signal: signal, event: event) }
}

/// The ptrace(2) requests the engine makes.
enum PtraceRequest: Equatable, Sendable {
    case cont(signal: Int32)
    case syscall(signal: Int32)
    case detach(signal: Int32)
    case listen
    case interrupt
    case seize(options: UInt)
    case setOptions(UInt)
}

/// A thread's system call registers at a syscall stop, by role (x86_64: orig_rax; rdi, rsi, rdx, r10, r8, r9; rax).
package struct SyscallRegisters: Equatable, Sendable {
    package var number: UInt64
    package var arg1: UInt64 = 0
    package var arg2: UInt64 = 0
    package var arg3: UInt64 = 0
    package var arg4: UInt64 = 0
    package var arg5: UInt64 = 0
    package var arg6: UInt64 = 0
    /// The return value at the exit stop (-ENOSYS at the entry stop).
    package var result: UInt64 = UInt64(bitPattern: -Int64(ENOSYS))

    package init(
        number: UInt64, arg1: UInt64 = 0, arg2: UInt64 = 0, arg3: UInt64 = 0, arg4: UInt64 = 0, arg5: UInt64 = 0,
        arg6: UInt64 = 0, result: UInt64 = UInt64(bitPattern: -Int64(ENOSYS))
    ) {
        self.number = number
        self.arg1 = arg1
        self.arg2 = arg2
        self.arg3 = arg3
        self.arg4 = arg4
        self.arg5 = arg5
        self.arg6 = arg6
        self.result = result
    }

    /// At an entry stop the kernel has not run the call yet: the result register holds -ENOSYS.
    var atEntry: Bool { result == UInt64(bitPattern: -Int64(ENOSYS)) }
    /// The first argument as the descriptor it is for most calls.
    var fdArgument: Int32 { Int32(truncatingIfNeeded: arg1) }
}

/// A thread's whole register set, kept while a call is injected; opaque outside the kernel.
struct SavedRegisters: @unchecked Sendable {
    var raw = ctrace_saved_regs()
}

/// The /proc/PID/status fields the tracer reads.
package struct ProcessStatus: Equatable, Sendable {
    package var tgid: Int32?
    /// The state letter: R, S, D, T, t, Z, X.
    package var state: Character?
    package var parent: Int32?
    /// The pid of the process tracing it, 0 for none.
    package var tracer: Int32?

    init(tgid: Int32? = nil, state: Character? = nil, parent: Int32? = nil, tracer: Int32? = nil) {
        self.tgid = tgid
        self.state = state
        self.parent = parent
        self.tracer = tracer
    }

    /// Parses the text of /proc/PID/status.
    package init(parsing text: String) {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].trimmingSpaces
            switch line[..<colon] {
            case "Tgid": tgid = Int32(value)
            case "State": state = value.first
            case "PPid": parent = Int32(value)
            case "TracerPid": tracer = Int32(value)
            default: break
            }
        }
    }
}

// ptrace(2) requests, options and events (linux/ptrace.h), which Swift's Glibc does not import as enums.
enum PT {
    static let cont: Int32 = 7
    static let kill: Int32 = 8
    static let detach: Int32 = 17
    static let syscall: Int32 = 24
    static let setOptions: Int32 = 0x4200
    static let getEventMsg: Int32 = 0x4201
    static let seize: Int32 = 0x4206
    static let interrupt: Int32 = 0x4207
    static let listen: Int32 = 0x4208

    static let traceSysGood: UInt = 0x1
    static let traceFork: UInt = 0x2
    static let traceVfork: UInt = 0x4
    static let traceClone: UInt = 0x8
    static let traceExec: UInt = 0x10
    static let traceSeccomp: UInt = 0x80
    static let exitKill: UInt = 0x10_0000

    static let eventFork: Int32 = 1
    static let eventVfork: Int32 = 2
    static let eventClone: Int32 = 3
    static let eventExec: Int32 = 4
    static let eventSeccomp: Int32 = 7
    static let eventStop: Int32 = 128
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
