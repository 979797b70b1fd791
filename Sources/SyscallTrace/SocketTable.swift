import CTraceShims
import Glibc
import PacketWire
import Sockets

extension Tracer {
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

    func learnSocket(inode: UInt64, pid: Int32, fd: Int32, family: Int32, type: Int32) {
        let owner = "\(processes[pid]?.comm ?? "?")[\(pid)]"
        sockets[inode] = SocketRecord(inode: inode, family: family, type: type, owner: owner)
        refresh(inode: inode, pid: pid, fd: fd)
    }

    /// getsockname/getpeername/TCP_INFO on a duplicate obtained with pidfd_getfd(2) (see ``duplicate(pid:fd:)``:
    /// it is closed before the thread runs again, so it never keeps the socket alive past the program's own close).
    func refresh(inode: UInt64, pid: Int32, fd: Int32) {
        lastState = nil
        let dup = duplicate(pid: pid, fd: fd)
        guard dup >= 0 else {
            if duplicatesRefused { refreshFromKernelTables(inode: inode, pid: pid) }
            return
        }
        guard var s = sockets[inode] else { return }
        var value: Int32 = 0
        var len = socklen_t(4)
        if s.family == 0, getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &value, &len) == 0 { s.family = value }
        len = 4
        if s.type == 0, getsockopt(dup, SOL_SOCKET, SO_TYPE, &value, &len) == 0 { s.type = value }
        // A connected TCP socket's two ends never change: skip two calls per recorded call once both are known.
        let settled = s.isTCP && s.remote != nil && (s.local?.port ?? 0) != 0
        var storage = sockaddr_storage()
        len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let gotLocal = settled ? -1 : withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(dup, $0, &len) }
        }
        if gotLocal == 0, let a = SocketAddress(storage: storage), a.port != 0 || s.local == nil { s.local = a }
        len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        storage = sockaddr_storage()
        let gotRemote = settled ? -1 : withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(dup, $0, &len) }
        }
        if gotRemote == 0, let a = SocketAddress(storage: storage) { s.remote = a }
        if s.isTCP {
            var info = [UInt8](repeating: 0, count: 256)
            len = 256
            if getsockopt(dup, Int32(IPPROTO_TCP), 11 /* TCP_INFO */, &info, &len) == 0, len > 0 {
                lastState = TCPState(rawValue: info[0])
            }
        }
        sockets[inode] = s
    }

    /// Where a socket is and its TCP state from the kernel's tables when its descriptor cannot be duplicated.
    func refreshFromKernelTables(inode: UInt64, pid: Int32) {
        guard var s = sockets[inode] else { return }
        guard let (entry, family, type) = KernelTCPTable.socket(inode: inode, inNetworkOf: pid) else {
            // The kernel hashes every TCP socket but a CLOSED one (fresh, merely bound, refused, or reset).
            if s.isTCP { lastState = .closed }
            return
        }
        if s.family == 0 { s.family = family }
        if s.type == 0 { s.type = type }
        if entry.local.port != 0 || s.local == nil { s.local = entry.local }
        if entry.remote.port != 0 { s.remote = entry.remote }
        if s.isTCP { lastState = entry.state }
        sockets[inode] = s
    }

    /// A duplicate (in this process) of descriptor `fd` of process `pid`, or -1. Closed by ``releaseDuplicate()``
    /// before the tracee runs again.
    func duplicate(pid: Int32, fd: Int32) -> Int32 {
        if let h = held {
            if h.pid == pid && h.fd == fd { return h.dup }
            releaseDuplicate()
        }
        guard !duplicatesRefused else {
            errno = EPERM
            return -1
        }
        guard fd >= 0, let process = processes[pid] else {
            errno = fd < 0 ? EBADF : ESRCH
            return -1
        }
        func refused() -> Int32 {
            let error = errno
            if error == EPERM || error == ENOSYS || error == EACCES { duplicatesRefused = true }
            errno = error
            return -1
        }
        if process.pidfd < 0 { process.pidfd = ctrace_pidfd_open(pid) }
        guard process.pidfd >= 0 else { return refused() }
        let dup = ctrace_pidfd_getfd(process.pidfd, fd)
        guard dup >= 0 else { return refused() }
        held = (pid, fd, dup)
        return dup
    }

    func releaseDuplicate() {
        if let h = held {
            Glibc.close(h.dup)
            held = nil
        }
    }

    /// What descriptor `fd` of `pid` is: a socket's inode is the st_ino of a duplicate (the number in
    /// `socket:[inode]`). Falls back to /proc when no duplicate can be had; nil when the number is not open.
    func entry(pid: Int32, fd: Int32) -> FDEntry? {
        guard fd >= 0 else { return nil }
        let dup = duplicate(pid: pid, fd: fd)
        guard dup >= 0 else {
            return errno == EBADF ? nil : Self.fdEntry(pid: pid, fd: fd)
        }
        var st = stat()
        guard fstat(dup, &st) == 0 else { return Self.fdEntry(pid: pid, fd: fd) }
        return st.st_mode & S_IFMT == S_IFSOCK ? .socket(UInt64(st.st_ino)) : .other
    }

    /// /proc/PID/fd/N -> "socket:[inode]" or anything else; nil when the number is not open.
    static func fdEntry(pid: Int32, fd: Int32) -> FDEntry? {
        guard fd >= 0, let target = ProcFiles.linkTarget("/proc/\(pid)/fd/\(fd)") else { return nil }
        return parseLink(target)
    }

    static func parseLink(_ target: String) -> FDEntry {
        guard target.hasPrefix("socket:["), target.hasSuffix("]"),
            let inode = UInt64(target.dropFirst(8).dropLast())
        else { return .other }
        return .socket(inode)
    }
}
