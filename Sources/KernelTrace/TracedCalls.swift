import Glibc
import PacketWire
import Sockets
import SyscallTrace
import Timeline

// The eBPF engine's calls in the ptrace engine's shape (SyscallTrace's TracedCall and SocketRecord), so the
// session, attribution and every renderer take them unchanged. The argument names and previews follow
// Tracer.finish; the values come from the registers and the bytes the BPF program copied at the call's exit
// instead of from the program's memory through ptrace.
extension KernelCall {
    /// The call as the ptrace engine records it; nil for a system call it does not decode (never recorded).
    public var tracedCall: TracedCall? {
        guard let syscall = Syscall(rawValue: Int(syscallNumber)) else { return nil }
        var call = TracedCall(
            id: number, pid: pid, tid: tid, comm: comm, syscall: syscall, returnValue: returnValue, start: start,
            end: end)
        call.fd = fd
        call.source = source
        if let socket {
            call.socket = socket.inode
            call.local = socket.local
            call.remote = socket.remote
            call.state = socket.tcpState
        }
        let fdArg: ArgumentValue = .int(Int(fdArgument ?? -1))
        let ok = succeeded
        func register(_ i: Int) -> UInt64 { i < arguments.count ? arguments[i] : 0 }
        switch syscall {
        case .socket:
            call.args = [
                ("domain", .string(Self.familyName(Int32(truncatingIfNeeded: register(0))))),
                ("type", .string(Self.typeName(Int32(truncatingIfNeeded: register(1)) & 0xf))),
            ]
        case .socketpair:
            let (a, b) = pair ?? (-1, -1)
            call.args = [
                ("domain", .string(Self.familyName(Int32(truncatingIfNeeded: register(0))))),
                ("sv", .string("[\(a), \(b)]")),
            ]
        case .accept, .accept4:
            call.args = [("fd", fdArg)]
            if ok { call.args.append(("newfd", .int(Int(returnValue)))) }
        case .dup, .dup2, .dup3, .fcntl:
            call.args = [("oldfd", fdArg)]
        case .connect, .bind:
            call.args = [("fd", fdArg), ("addr", .string(Self.describe(address) ?? "?"))]
        case .listen:
            call.args = [("fd", fdArg), ("backlog", .int(Int(Int32(truncatingIfNeeded: register(1)))))]
        case .shutdown:
            let how = Int32(truncatingIfNeeded: register(1))
            call.how = how
            call.args = [
                ("fd", fdArg), ("how", .string(["SHUT_RD", "SHUT_WR", "SHUT_RDWR"][Int(max(0, min(how, 2)))])),
            ]
        case .setsockopt, .getsockopt:
            call.args = [("fd", fdArg)] + socketOption(ok: ok)
        case .write, .sendto:
            call.args = [
                ("fd", fdArg), ("data", .bytes(count: dataCount, preview: TextEscaper.preview(data, limit: 256))),
            ]
            if syscall == .sendto, let text = Self.describe(address) { call.args.append(("addr", .string(text))) }
        case .read, .recvfrom:
            call.args = [("fd", fdArg), ("size", .int(Int(truncatingIfNeeded: register(2))))]
            if ok {
                call.args.append(
                    ("data", .bytes(count: Int(returnValue), preview: TextEscaper.preview(data, limit: 256))))
            }
        default:
            call.args = [("fd", fdArg)]
        }
        return call
    }

    /// A socket option call's level, option and value as strace shows them (as the ptrace engine does).
    func socketOption(ok: Bool) -> [(String, ArgumentValue)] {
        let level = Int32(truncatingIfNeeded: arguments.count > 1 ? arguments[1] : 0)
        let option = Int32(truncatingIfNeeded: arguments.count > 2 ? arguments[2] : 0)
        var args: [(String, ArgumentValue)] = [
            ("level", SocketOptionNames.level(level).map { .string($0) } ?? .int(Int(level))),
            ("option", SocketOptionNames.option(level: level, option).map { .string($0) } ?? .int(Int(option))),
        ]
        guard ok, dataCount > 0, !data.isEmpty else { return args }
        func int32(at offset: Int) -> Int32? {
            guard data.count >= offset + 4 else { return nil }
            return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
        }
        if SocketOptionNames.isText(level: level, option) {
            args.append(("value", .string(String(decoding: data.prefix(64).prefix { $0 != 0 }, as: UTF8.self))))
        } else if SocketOptionNames.isLinger(level: level, option), dataCount >= 8, let on = int32(at: 0),
            let linger = int32(at: 4)
        {
            args += [("l_onoff", .int(Int(on))), ("l_linger", .int(Int(linger)))]
        } else if dataCount == 4, let v = int32(at: 0) {
            args.append(("value", .int(Int(v))))
        }
        return args
    }

    /// A sockaddr as the ptrace engine shows it: "127.0.0.1:8080", a Unix socket's path, "@name" for an abstract
    /// one; nil when there is none.
    static func describe(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 2 else { return nil }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes.prefix($0.count)) }
        if let ip = SocketAddress(storage: storage) { return ip.description }
        let family = Int(bytes[0]) | Int(bytes[1]) << 8
        guard family == Int(AF_UNIX) else { return "family \(family)" }
        let path = bytes.dropFirst(2)
        guard let first = path.first else { return "(unnamed)" }
        if first == 0 { return "@" + TextEscaper.escape(path.dropFirst().prefix { $0 != 0 }) }
        return TextEscaper.escape(path.prefix { $0 != 0 })
    }

    static func familyName(_ f: Int32) -> String {
        switch f {
        case 1: "AF_UNIX"
        case 2: "AF_INET"
        case 10: "AF_INET6"
        case 16: "AF_NETLINK"
        case 17: "AF_PACKET"
        default: "\(f)"
        }
    }

    static func typeName(_ t: Int32) -> String {
        switch t {
        case 1: "SOCK_STREAM"
        case 2: "SOCK_DGRAM"
        case 3: "SOCK_RAW"
        case 5: "SOCK_SEQPACKET"
        default: "\(t)"
        }
    }
}

extension KernelTraceRun {
    /// The calls as the ptrace engine's ``TracedCall``s, same numbering.
    public var tracedCalls: [TracedCall] { calls.compactMap(\.tracedCall) }

    /// The sockets the calls used, by inode, as the ptrace engine's table: family and type, the owner (the first
    /// process that used it), where it was last seen bound and connected, and whether it listened.
    public var sockets: [UInt64: SocketRecord] {
        var table: [UInt64: SocketRecord] = [:]
        for call in calls {
            guard let s = call.socket, s.inode != 0 else { continue }
            var record =
                table[s.inode]
                ?? SocketRecord(inode: s.inode, family: s.family, type: s.type, owner: "\(call.comm)[\(call.pid)]")
            if let local = s.local, local.port != 0 || record.local == nil { record.local = local }
            if let remote = s.remote { record.remote = remote }
            if call.syscallNumber == Int32(Syscall.listen.rawValue) && call.succeeded { record.listening = true }
            table[s.inode] = record
        }
        return table
    }
}
