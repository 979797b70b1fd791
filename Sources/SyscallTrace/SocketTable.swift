import Glibc
import PacketWire
import Sockets
import SystemCalls

/// The duplicate of one tracee descriptor that a stop works on: what the descriptor is (fstat) and where its
/// socket is (getsockname, TCP_INFO) come from one pidfd_getfd(2) instead of a readlink of /proc/PID/fd/N plus a
/// duplicate per question. It belongs to one stop, which closes it before the tracee runs again: a duplicate kept
/// longer would keep the socket alive past the program's own close and delay the FIN that close sends.
struct HeldDuplicate {
    fileprivate var held: (pid: Int32, fd: Int32, dup: Int32)?

    init() {}

    mutating func release(_ kernel: any PtraceKernel) {
        if let h = held {
            kernel.close(h.dup)
            held = nil
        }
    }
}

/// The sockets the traced processes use (by inode: family, type, both ends, whether listening), and the descriptor
/// table of each process, followed through the calls that change it.
///
/// What a descriptor is and where its socket is are asked of the kernel through a duplicate of the tracee's
/// descriptor (``HeldDuplicate``); when duplicates are refused (a container's seccomp profile, an old kernel), through
/// /proc and the kernel's socket tables instead, with the same answers. The TCP state such a question reads is
/// returned to the caller, not kept.
///
/// Each question names the process and the thread at the stop it is asked from. A process outlives its
/// thread-group leader when the main thread calls pthread_exit while others go on: the leader's descriptor table
/// and /proc/PID/fd are gone then, so duplicates are taken through a pidfd of the asking thread and /proc is read
/// as /proc/TID, which shows the same table.
final class SocketTable {
    let kernel: any PtraceKernel
    private(set) var sockets: [UInt64: SocketRecord] = [:]
    /// Each traced process's descriptor table, by process id; a process is known here from its first stop or the
    /// fork that made it until it exits.
    private var tables: [Int32: FDTable] = [:]
    /// pidfd_open(2) of each process whose descriptors were duplicated, opened at the first duplicate, and the task
    /// it names: the process, or the thread it was reopened for after the leader exited.
    private var pidfds: [Int32: (fd: Int32, task: Int32)] = [:]
    /// Processes whose leader exited on a kernel without thread pidfds (before 6.9): asked through /proc/TID and
    /// the kernel's socket tables, as when duplicates are refused.
    private var askedThroughProc: Set<Int32> = []
    /// Set when pidfd_open(2) or pidfd_getfd(2) is refused (a container's seccomp profile without CAP_SYS_PTRACE
    /// answers EPERM; kernels before 5.3 and 5.6 lack them): descriptors are then told apart through
    /// /proc/PID/fd, sockets are found by inode through sock_diag or /proc/PID/net, and the call is not tried again.
    private(set) var duplicatesRefused = false

    init(kernel: any PtraceKernel) { self.kernel = kernel }

    subscript(inode: UInt64) -> SocketRecord? {
        get { sockets[inode] }
        set { sockets[inode] = newValue }
    }

    // MARK: processes

    /// A process first seen: its table starts empty.
    func processStarted(_ pid: Int32) {
        if tables[pid] == nil { tables[pid] = FDTable() }
    }

    /// fork(2): the child starts with a copy of its parent's descriptors (a pidfd it already has is kept).
    func processForked(from parent: Int32, to child: Int32) {
        if let table = tables[parent] { tables[child] = table }
    }

    /// execve(2) closed the descriptors marked close-on-exec, which the tracer cannot see: keep what /proc still
    /// shows with the same identity.
    func processExecuted(_ pid: Int32) {
        tables[pid]?.afterExec { fd in kernel.descriptorLink(pid, fd).map(Self.parseLink) }
    }

    func processExited(_ pid: Int32) {
        tables[pid] = nil
        askedThroughProc.remove(pid)
        if let pidfd = pidfds.removeValue(forKey: pid) { kernel.close(pidfd.fd) }
    }

    /// Closes what is still open at the end of the trace.
    func closeAll() {
        for pid in pidfds.keys.sorted() { kernel.close(pidfds[pid]!.fd) }
        pidfds = [:]
    }

    // MARK: descriptor tables

    subscript(pid: Int32, fd: Int32) -> FDEntry? {
        get { tables[pid]?[fd] }
        set { tables[pid]?[fd] = newValue }
    }

    func opened(_ pid: Int32, _ fd: Int32, socket inode: UInt64) { tables[pid]?.opened(fd, socket: inode) }

    func closed(_ pid: Int32, _ fd: Int32) { tables[pid]?.closed(fd) }

    func duplicated(_ pid: Int32, _ old: Int32, to new: Int32) { tables[pid]?.duplicated(old, to: new) }

    /// Whether any traced process still has a descriptor for the socket.
    func isOpen(_ inode: UInt64) -> Bool { tables.values.contains { !$0.descriptors(of: inode).isEmpty } }

    // MARK: asking the kernel

    /// What descriptor `fd` of `pid` is, asked from its thread `tid`: a socket's inode is the st_ino of a duplicate
    /// (the number in `socket:[inode]`). Falls back to /proc when no duplicate can be had; nil when the number is not
    /// open.
    func entry(pid: Int32, thread tid: Int32, fd: Int32, _ held: inout HeldDuplicate) -> FDEntry? {
        guard fd >= 0 else { return nil }
        switch duplicate(pid: pid, thread: tid, fd: fd, &held) {
        case .failure(let error):
            return error.rawValue == EBADF ? nil : procEntry(pid: tid, fd: fd)
        case .success(let dup):
            return kernel.identify(dup) ?? procEntry(pid: tid, fd: fd)
        }
    }

    /// A socket met on a descriptor the tracer had not seen made: recorded with what can be learnt about it.
    /// Returns its TCP state.
    func learn(
        inode: UInt64, pid: Int32, thread tid: Int32, fd: Int32, owner: String, _ held: inout HeldDuplicate
    ) -> TCPState? {
        sockets[inode] = SocketRecord(inode: inode, family: 0, type: 0, owner: owner)
        return refresh(inode: inode, pid: pid, thread: tid, fd: fd, &held)
    }

    /// Where the socket is now (getsockname/getpeername, its family and type if unknown) and its TCP state, asked
    /// through a duplicate of the tracee's descriptor.
    func refresh(inode: UInt64, pid: Int32, thread tid: Int32, fd: Int32, _ held: inout HeldDuplicate) -> TCPState? {
        guard case .success(let dup) = duplicate(pid: pid, thread: tid, fd: fd, &held) else {
            let tablesOnly = duplicatesRefused || askedThroughProc.contains(pid)
            return tablesOnly ? refreshFromKernelTables(inode: inode, pid: tid) : nil
        }
        guard var s = sockets[inode] else { return nil }
        if s.family == 0, let value = kernel.intOption(dup, level: SOL_SOCKET, SO_DOMAIN) { s.family = value }
        if s.type == 0, let value = kernel.intOption(dup, level: SOL_SOCKET, SO_TYPE) { s.type = value }
        // A connected TCP socket's two ends never change: skip two calls per recorded call once both are known.
        let settled = s.isTCP && s.remote != nil && (s.local?.port ?? 0) != 0
        if !settled {
            if let a = kernel.address(dup, peer: false), a.port != 0 || s.local == nil { s.local = a }
            if let a = kernel.address(dup, peer: true) { s.remote = a }
        }
        let state = s.isTCP ? kernel.tcpState(dup) : nil
        sockets[inode] = s
        return state
    }

    /// Where a socket is and its TCP state from the kernel's tables when its descriptor cannot be duplicated.
    func refreshFromKernelTables(inode: UInt64, pid: Int32) -> TCPState? {
        guard var s = sockets[inode] else { return nil }
        guard let (entry, family, type) = kernel.kernelSocket(inode: inode, inNetworkOf: pid) else {
            // The kernel hashes every TCP socket but a CLOSED one (fresh, merely bound, refused, or reset).
            return s.isTCP ? .closed : nil
        }
        if s.family == 0 { s.family = family }
        if s.type == 0 { s.type = type }
        if entry.local.port != 0 || s.local == nil { s.local = entry.local }
        if entry.remote.port != 0 { s.remote = entry.remote }
        sockets[inode] = s
        return s.isTCP ? entry.state : nil
    }

    /// A duplicate (in this process) of descriptor `fd` of process `pid`, taken while its thread `tid` is stopped
    /// and kept in `held` (which holds one at a time) until the stop releases it.
    func duplicate(pid: Int32, thread tid: Int32, fd: Int32, _ held: inout HeldDuplicate) -> Result<Int32, Errno> {
        if let h = held.held {
            if h.pid == pid && h.fd == fd { return .success(h.dup) }
            held.release(kernel)
        }
        guard !duplicatesRefused, !askedThroughProc.contains(pid) else { return .failure(Errno(rawValue: EPERM)) }
        guard fd >= 0, tables[pid] != nil else { return .failure(Errno(rawValue: fd < 0 ? EBADF : ESRCH)) }
        func refused(_ error: Errno) -> Result<Int32, Errno> {
            if [EPERM, ENOSYS, EACCES].contains(error.rawValue) { duplicatesRefused = true }
            return .failure(error)
        }
        if pidfds[pid] == nil {
            switch kernel.pidfdOpen(pid, thread: false) {
            case .success(let pidfd): pidfds[pid] = (pidfd, pid)
            case .failure(let error): return refused(error)
            }
        }
        var got = kernel.pidfdGetfd(pidfds[pid]!.fd, fd)
        if case .failure(let error) = got, error.rawValue == ESRCH, let old = pidfds[pid], old.task != tid {
            // The task the pidfd names is gone while the asking thread runs on: the thread-group leader called
            // pthread_exit (its table went with it). Ask through a pidfd of this thread.
            kernel.close(old.fd)
            pidfds[pid] = nil
            switch kernel.pidfdOpen(tid, thread: true) {
            case .success(let pidfd):
                pidfds[pid] = (pidfd, tid)
                got = kernel.pidfdGetfd(pidfd, fd)
            case .failure(let error) where error.rawValue == EINVAL:
                askedThroughProc.insert(pid)
                return .failure(error)
            case .failure(let error):
                return refused(error)
            }
        }
        switch got {
        case .success(let dup):
            held.held = (pid, fd, dup)
            return .success(dup)
        case .failure(let error):
            return refused(error)
        }
    }

    /// /proc/PID/fd/N -> "socket:[inode]" or anything else; nil when the number is not open.
    func procEntry(pid: Int32, fd: Int32) -> FDEntry? {
        guard fd >= 0, let target = kernel.descriptorLink(pid, fd) else { return nil }
        return Self.parseLink(target)
    }

    static func parseLink(_ target: String) -> FDEntry {
        guard target.hasPrefix("socket:["), target.hasSuffix("]"),
            let inode = UInt64(target.dropFirst(8).dropLast())
        else { return .other }
        return .socket(inode)
    }

    /// What close(2) of the last descriptor does to a TCP socket (RFC 793 / tcp_close()).
    static func stateAfterClose(_ before: TCPState?) -> TCPState? {
        switch before {
        case .established?, .synReceived?: .finWait1
        case .closeWait?: .lastAck
        case .finWait1?, .finWait2?, .closing?, .lastAck?, .timeWait?: before
        case nil: nil
        default: .closed
        }
    }
}
