import Glibc
import PacketWire
import SystemCalls
import Timeline

@testable import Sockets
@testable import SyscallTrace

/// A kernel that plays a script: waitpid answers the scripted stops in order, and everything else is answered from
/// a small world of processes, descriptors, sockets and memory that each step may change. It logs what the engine
/// asks the tracees to do (ptrace requests, signals, register writes) so a test can compare the whole exchange, and
/// it checks the promise the stop loop makes about duplicates: none is open when a thread is let run.
final class ScriptedKernel: PtraceKernel {
    /// One waitpid answer, at a time in milliseconds since the script began.
    enum Step {
        /// A stop (or exit) of `tid`; `regs` are its registers from then on; `change` alters the world first (what
        /// the kernel did while the thread ran: a socket made, a connection established).
        case report(
            tid: Int32, WaitStatus, at: Int, regs: SyscallRegisters? = nil, change: ((ScriptedKernel) -> Void)? = nil)
        /// waitpid is interrupted (EINTR) because packetflow got SIGINT/SIGTERM: `request` is waiting for the loop.
        case stopRequest(StopRequest)
    }

    /// What the engine asked of a tracee, in order.
    enum Request: Equatable, CustomStringConvertible {
        case ptrace(PtraceRequest, Int32)
        case kill(Int32, Int32)
        case tgkill(Int32, Int32, Int32)
        case skip(Int32, Int64)
        case inject(Int32, fds: [Int32])
        case restore(Int32)

        var description: String {
            switch self {
            case .ptrace(let r, let tid): "\(r) \(tid)"
            case .kill(let pid, let sig): "kill(\(pid), \(sig))"
            case .tgkill(let tgid, let tid, let sig): "tgkill(\(tgid), \(tid), \(sig))"
            case .skip(let tid, let result): "skip \(tid) = \(result)"
            case .inject(let tid, let fds): "inject \(tid) \(fds)"
            case .restore(let tid): "restore \(tid)"
            }
        }
    }

    struct Socket {
        var family: Int32
        var type: Int32
        var local: SocketAddress?
        var remote: SocketAddress?
        var state: TCPState?
    }

    var steps: [Step]
    private(set) var log: [Request] = []
    /// Broken promises: a thread let run while a duplicate was open, a thread resumed that was not stopped.
    private(set) var violations: [String] = []
    /// Every pidfd opened: "process PID" or "thread TID".
    private(set) var pidfdsOpened: [String] = []
    /// Every duplicate pidfd_getfd made, as "pid/fd".
    private(set) var duplicated: [String] = []
    /// Whether waitpid ran out of script (the loop should end on its own before that).
    private(set) var ranOut = false

    // The world.
    var spawnedPid: Int32 = 100
    private(set) var launched: (command: [String], filter: LaunchFilter)?
    var tgids: [Int32: Int32] = [:]
    var comms: [Int32: String] = [:]
    /// Descriptor tables by process.
    var files: [Int32: [Int32: FDEntry]] = [:]
    var sockets: [UInt64: Socket] = [:]
    /// Threads of each process, as /proc/PID/task lists them.
    var tasks: [Int32: [Int32]] = [:]
    var memory: [UInt64: [UInt8]] = [:]
    var eventMessages: [Int32: UInt] = [:]
    /// Thread-group leaders that called pthread_exit while their threads go on: a zombie whose descriptor table and
    /// /proc/PID/fd and /proc/PID/net are gone; pidfd_getfd through its pidfd answers ESRCH.
    var leadersGone: Set<Int32> = []
    /// What pidfd_open answers instead of a pidfd (a container's seccomp profile: EPERM).
    var pidfdRefusal: Errno?
    /// Whether pidfd_open takes PIDFD_THREAD (Linux 6.9; EINVAL before).
    var threadPidfds = true
    /// Processes another tracer holds (seizing them is refused), and which.
    var tracers: [Int32: Int32] = [:]
    /// Processes we may not trace (another user's).
    var forbidden: Set<Int32> = []
    /// Sockets of ours a launched program inherits.
    var inherited: [Int32] = []

    private var registers: [Int32: SyscallRegisters] = [:]
    private var stopped: Set<Int32> = []
    private var pendingRequest: StopRequest?
    private var milliseconds = 0
    private var duplicates: [Int32: (pid: Int32, fd: Int32)] = [:]
    /// The task each pidfd names.
    private var pidfds: [Int32: Int32] = [:]
    private var nextDescriptor: Int32 = 1000

    init(_ steps: [Step]) { self.steps = steps }

    /// The request the loop takes from the "signal handler".
    func takeRequest() -> StopRequest? {
        defer { pendingRequest = nil }
        return pendingRequest
    }

    static func time(_ ms: Int) -> Timestamp { Timestamp(totalNanoseconds: 1_000_000_000_000 + Int64(ms) * 1_000_000) }

    private func resumed(_ tid: Int32, _ what: String) {
        if !duplicates.isEmpty { violations.append("\(what) \(tid) with duplicates open: \(duplicates.keys.sorted())") }
        if stopped.remove(tid) == nil { violations.append("\(what) \(tid), which was not stopped") }
    }

    // MARK: processes and ptrace

    func spawnTraced(_ command: [String], environment: [String: String], filter: LaunchFilter) -> Result<Int32, Errno> {
        launched = (command, filter)
        return .success(spawnedPid)
    }

    func wait(_ pid: Int32) -> WaitResult {
        guard !steps.isEmpty else {
            ranOut = true
            return .noChildren
        }
        switch steps.removeFirst() {
        case .stopRequest(let request):
            pendingRequest = request
            return .interrupted
        case .report(let tid, let status, let at, let regs, let change):
            milliseconds = at
            change?(self)
            if let regs { registers[tid] = regs }
            if case .stopped = status { stopped.insert(tid) } else { stopped.remove(tid) }
            return .report(tid: tid, status)
        }
    }

    func ptrace(_ request: PtraceRequest, _ tid: Int32) -> Errno? {
        log.append(.ptrace(request, tid))
        // Neither a zombie nor another tracer's tracee can be seized.
        if case .seize = request, leadersGone.contains(tid) || tracers[tid] != nil || forbidden.contains(tid) {
            return Errno(rawValue: EPERM)
        }
        switch request {
        case .cont, .syscall, .detach: resumed(tid, "\(request)")
        case .listen: stopped.remove(tid)
        case .interrupt, .seize, .setOptions: break
        }
        return nil
    }

    func eventMessage(_ tid: Int32) -> UInt? { eventMessages[tid] }

    func registers(_ tid: Int32) -> SyscallRegisters? { registers[tid] }

    func skipSyscall(_ tid: Int32, returning result: Int64) { log.append(.skip(tid, result)) }

    func injectFilter(_ tid: Int32, gated: [Int32], fds: [Int32]) -> Result<SavedRegisters, Errno> {
        log.append(.inject(tid, fds: fds))
        if gated != Syscall.fdGated.map({ Int32($0.rawValue) }) { violations.append("inject gated \(gated)") }
        return .success(SavedRegisters())
    }

    func restoreRegisters(_ tid: Int32, _ saved: SavedRegisters) { log.append(.restore(tid)) }

    func readMemory(_ pid: Int32, at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let bytes = memory[address] else { return -1 }
        let n = min(bytes.count, buffer.count)
        buffer.copyBytes(from: bytes.prefix(n))
        return n
    }

    func kill(_ pid: Int32, _ signal: Int32) -> Errno? {
        if signal != 0 { log.append(.kill(pid, signal)) }
        return tgids[pid] == nil ? Errno(rawValue: ESRCH) : nil
    }

    func tgkill(_ tgid: Int32, _ tid: Int32, _ signal: Int32) -> Errno? {
        log.append(.tgkill(tgid, tid, signal))
        return nil
    }

    // MARK: descriptors

    func pidfdOpen(_ pid: Int32, thread: Bool) -> Result<Int32, Errno> {
        if let pidfdRefusal { return .failure(pidfdRefusal) }
        if thread && !threadPidfds { return .failure(Errno(rawValue: EINVAL)) }
        guard let tgid = tgids[pid] else { return .failure(Errno(rawValue: ESRCH)) }
        if !thread && tgid != pid { return .failure(Errno(rawValue: ENOENT)) }
        nextDescriptor += 1
        pidfds[nextDescriptor] = pid
        pidfdsOpened.append(thread ? "thread \(pid)" : "process \(pid)")
        return .success(nextDescriptor)
    }

    func pidfdGetfd(_ pidfd: Int32, _ fd: Int32) -> Result<Int32, Errno> {
        guard let task = pidfds[pidfd], let pid = tgids[task] else { return .failure(Errno(rawValue: EBADF)) }
        if leadersGone.contains(task) { return .failure(Errno(rawValue: ESRCH)) }
        guard files[pid]?[fd] != nil else { return .failure(Errno(rawValue: EBADF)) }
        nextDescriptor += 1
        duplicates[nextDescriptor] = (pid, fd)
        duplicated.append("\(pid)/\(fd)")
        return .success(nextDescriptor)
    }

    func close(_ fd: Int32) {
        duplicates[fd] = nil
        pidfds[fd] = nil
    }

    private func socket(behind dup: Int32) -> Socket? {
        guard let (pid, fd) = duplicates[dup], case .socket(let inode)? = files[pid]?[fd] else { return nil }
        return sockets[inode]
    }

    func identify(_ fd: Int32) -> FDEntry? {
        guard let (pid, number) = duplicates[fd] else { return nil }
        return files[pid]?[number]
    }

    func intOption(_ fd: Int32, level: Int32, _ option: Int32) -> Int32? {
        guard let s = socket(behind: fd) else { return nil }
        return option == SO_DOMAIN ? s.family : option == SO_TYPE ? s.type : nil
    }

    func address(_ fd: Int32, peer: Bool) -> SocketAddress? {
        peer ? socket(behind: fd)?.remote : socket(behind: fd)?.local
    }

    func tcpState(_ fd: Int32) -> TCPState? { socket(behind: fd)?.state }

    // MARK: /proc

    func descriptorLink(_ pid: Int32, _ fd: Int32) -> String? {
        let process = tgids[pid] ?? pid
        // A thread-group leader that has exited shows no descriptors; its live threads show the process's.
        if leadersGone.contains(pid) { return nil }
        switch files[process]?[fd] {
        case .socket(let inode)?: return "socket:[\(inode)]"
        case .other?: return "/dev/null"
        case nil: return nil
        }
    }

    func descriptorNumbers(_ pid: Int32) -> [Int32] {
        leadersGone.contains(pid) ? [] : files[tgids[pid] ?? pid]?.keys.sorted() ?? []
    }

    func threadIDs(_ pid: Int32) -> [Int32] { tasks[pid] ?? [] }

    func command(_ pid: Int32) -> String? { comms[tgids[pid] ?? pid] }

    func status(_ pid: Int32) -> ProcessStatus? {
        guard let tgid = tgids[pid] else { return nil }
        return ProcessStatus(
            tgid: tgid, state: leadersGone.contains(pid) ? "Z" : "S", parent: 1, tracer: tracers[pid] ?? 0)
    }

    func kernelSocket(inode: UInt64, inNetworkOf pid: Int32) -> KernelSocket? {
        // /proc/PID/net of a leader that has exited is gone; the kernel's tables hold no CLOSED TCP socket.
        guard !leadersGone.contains(pid), let s = sockets[inode], let local = s.local else { return nil }
        let state = s.state ?? .closed
        if s.type == 1 && state == .closed { return nil }
        let remote = s.remote ?? SocketAddress(ip: local.ip.isIPv4 ? .anyV4 : .anyV6, port: 0)
        return (KernelTCPTable.Entry(local: local, remote: remote, state: state, inode: inode), s.family, s.type)
    }

    func inheritedSockets() -> [Int32] { inherited }

    func now() -> Timestamp { Self.time(milliseconds) }
}

// MARK: writing scripts

extension SyscallRegisters {
    /// The registers at the entry of `call` with its arguments.
    static func entry(_ call: Syscall, _ args: UInt64...) -> SyscallRegisters {
        var r = SyscallRegisters(number: UInt64(call.rawValue))
        let a = args + Array(repeating: 0, count: 6 - args.count)
        (r.arg1, r.arg2, r.arg3, r.arg4, r.arg5, r.arg6) = (a[0], a[1], a[2], a[3], a[4], a[5])
        return r
    }

    /// The same call at its exit stop, returning `result`.
    func returning(_ result: Int64) -> SyscallRegisters {
        var r = self
        r.result = UInt64(bitPattern: result)
        return r
    }
}

extension TracedCall {
    /// Every field of the call on one line, for exact comparison: `#id comm[pid/tid] name(args) = result
    /// [start-end ms] fd= socket= local= remote= state= how= source=`.
    var summary: String {
        func show(_ value: ArgumentValue) -> String {
            if case .bytes(let count, let preview) = value { return "\"\(preview)\"(\(count))" }
            return value.description
        }
        let args = args.map { "\($0.0)=\(show($0.1))" }.joined(separator: ", ")
        let result = succeeded ? "\(returnValue)" : "-\(TracedCall.errnoName(Int32(-returnValue)))"
        let ms = { (t: Timestamp) in (t.totalNanoseconds - 1_000_000_000_000) / 1_000_000 }
        var line = "#\(id) \(comm)[\(pid)/\(tid)] \(syscall.name)(\(args)) = \(result) [\(ms(start))-\(ms(end))]"
        if let fd { line += " fd=\(fd)" }
        if let socket { line += " socket=\(socket)" }
        if let local { line += " local=\(local)" }
        if let remote { line += " remote=\(remote)" }
        if let state { line += " state=\(state.name)" }
        if let how { line += " how=\(how)" }
        if let source { line += " source=\(source)" }
        return line
    }
}
