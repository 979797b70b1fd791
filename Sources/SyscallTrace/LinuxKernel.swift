import CTraceShims
import Glibc
import PacketWire
import Sockets
import SystemCalls

/// The real ``PtraceKernel``: ptrace(2), waitpid(2), process_vm_readv(2), pidfd_getfd(2) and /proc, through
/// CTraceShims (for what Swift cannot call: variadic ptrace, the register layout, BPF) and Glibc.
final class LinuxKernel: PtraceKernel {
    init() {}

    // MARK: processes and ptrace

    func spawnTraced(_ command: [String], environment: [String: String], filter: LaunchFilter) -> Result<Int32, Errno> {
        guard let file = command.first else { return .failure(Errno(rawValue: EINVAL)) }
        let pid = filter.always.withUnsafeBufferPointer { nrs in
            filter.gated.withUnsafeBufferPointer { g in
                filter.fds.withUnsafeBufferPointer { fds in
                    Linux.withExecArrays(command, environment) { argv, env in
                        ctrace_spawn_traced(
                            file, argv, env, nrs.baseAddress, Int32(nrs.count), g.baseAddress, Int32(g.count),
                            fds.baseAddress, Int32(fds.count))
                    }
                }
            }
        }
        return pid < 0 ? .failure(Errno(rawValue: errno)) : .success(pid)
    }

    func wait(_ pid: Int32) -> WaitResult {
        var status: Int32 = 0
        let tid = waitpid(pid, &status, __WALL)  // threads too
        if tid < 0 { return errno == EINTR ? .interrupted : .noChildren }
        return .report(tid: tid, WaitStatus(raw: status))
    }

    func ptrace(_ request: PtraceRequest, _ tid: Int32) -> Errno? {
        let done: Int
        switch request {
        case .cont(let signal): done = ctrace_ptrace(PT.cont, tid, 0, UInt(signal))
        case .syscall(let signal): done = ctrace_ptrace(PT.syscall, tid, 0, UInt(signal))
        case .detach(let signal): done = ctrace_ptrace(PT.detach, tid, 0, UInt(signal))
        case .listen: done = ctrace_ptrace(PT.listen, tid, 0, 0)
        case .interrupt: done = ctrace_ptrace(PT.interrupt, tid, 0, 0)
        case .seize(let options): done = ctrace_ptrace(PT.seize, tid, 0, options)
        case .setOptions(let options): done = ctrace_ptrace(PT.setOptions, tid, 0, options)
        }
        return done == 0 ? nil : Errno(rawValue: errno)
    }

    func eventMessage(_ tid: Int32) -> UInt? {
        var msg: UInt = 0
        // The call is made inside the closure: the pointer is valid only there.
        let done = withUnsafeMutablePointer(to: &msg) { ctrace_ptrace(PT.getEventMsg, tid, 0, UInt(bitPattern: $0)) }
        return done == 0 ? msg : nil
    }

    func registers(_ tid: Int32) -> SyscallRegisters? {
        var r = ctrace_regs()
        guard ctrace_get_regs(tid, &r) == 0 else { return nil }
        return SyscallRegisters(
            number: r.orig_rax, arg1: r.rdi, arg2: r.rsi, arg3: r.rdx, arg4: r.r10, arg5: r.r8, arg6: r.r9,
            result: r.rax)
    }

    func skipSyscall(_ tid: Int32, returning result: Int64) { _ = ctrace_skip_syscall(tid, result) }

    func injectFilter(_ tid: Int32, gated: [Int32], fds: [Int32]) -> Result<SavedRegisters, Errno> {
        var saved = SavedRegisters()
        let ok = gated.withUnsafeBufferPointer { g in
            fds.withUnsafeBufferPointer { f in
                ctrace_inject_filter(tid, g.baseAddress, Int32(g.count), f.baseAddress, Int32(f.count), &saved.raw) == 0
            }
        }
        return ok ? .success(saved) : .failure(Errno(rawValue: errno))
    }

    func restoreRegisters(_ tid: Int32, _ saved: SavedRegisters) {
        var saved = saved
        _ = ctrace_restore_regs(tid, &saved.raw)
    }

    func readMemory(_ pid: Int32, at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        ctrace_read_memory(pid, UInt(address), buffer.baseAddress, buffer.count)
    }

    func kill(_ pid: Int32, _ signal: Int32) -> Errno? {
        Glibc.kill(pid, signal) == 0 ? nil : Errno(rawValue: errno)
    }

    func tgkill(_ tgid: Int32, _ tid: Int32, _ signal: Int32) -> Errno? {
        ctrace_tgkill(tgid, tid, signal) == 0 ? nil : Errno(rawValue: errno)
    }

    // MARK: the tracees' descriptors

    func pidfdOpen(_ pid: Int32, thread: Bool) -> Result<Int32, Errno> {
        Result { () throws(Errno) in try Linux.pidfdOpen(ProcessID(rawValue: pid), thread: thread).rawValue }
    }

    func pidfdGetfd(_ pidfd: Int32, _ fd: Int32) -> Result<Int32, Errno> {
        Result { () throws(Errno) in try Linux.pidfdGetfd(FileDescriptor(rawValue: pidfd), fd).rawValue }
    }

    func close(_ fd: Int32) { Glibc.close(fd) }

    func identify(_ fd: Int32) -> FDEntry? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return st.st_mode & S_IFMT == S_IFSOCK ? .socket(UInt64(st.st_ino)) : .other
    }

    func intOption(_ fd: Int32, level: Int32, _ option: Int32) -> Int32? {
        var value: Int32 = 0
        var len = socklen_t(4)
        return getsockopt(fd, level, option, &value, &len) == 0 ? value : nil
    }

    func address(_ fd: Int32, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len)
            }
        }
        return got == 0 ? SocketAddress(storage: storage) : nil
    }

    func tcpState(_ fd: Int32) -> TCPState? { Socket.tcpState(ofDescriptor: fd) }

    // MARK: /proc

    func descriptorLink(_ pid: Int32, _ fd: Int32) -> String? {
        guard fd >= 0 else { return nil }
        return ProcFiles.linkTarget("/proc/\(pid)/fd/\(fd)")
    }

    func descriptorNumbers(_ pid: Int32) -> [Int32] { ProcFiles.names(in: "/proc/\(pid)/fd").compactMap { Int32($0) } }

    func threadIDs(_ pid: Int32) -> [Int32] { ProcFiles.names(in: "/proc/\(pid)/task").compactMap { Int32($0) } }

    func command(_ pid: Int32) -> String? {
        ProcFiles.command(of: pid)
    }

    func status(_ pid: Int32) -> ProcessStatus? {
        ProcFiles.contents("/proc/\(pid)/status").map { ProcessStatus(parsing: $0) }
    }

    func kernelSocket(inode: UInt64, inNetworkOf pid: Int32) -> KernelSocket? {
        KernelTCPTable.socket(inode: inode, inNetworkOf: pid)
    }

    func inheritedSockets() -> [Int32] {
        ProcFiles.names(in: "/proc/self/fd").compactMap { name -> Int32? in
            guard let fd = Int32(name), fcntl(fd, F_GETFD) & FD_CLOEXEC == 0,
                let target = descriptorLink(getpid(), fd), case .socket = SocketTable.parseLink(target)
            else { return nil }
            return fd
        }.sorted()
    }

    func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }
}
