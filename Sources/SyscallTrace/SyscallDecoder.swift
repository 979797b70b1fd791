import Glibc
import PacketWire
import Sockets
import Timeline

/// A traced thread's memory, as the decoder reads it: a range that cannot be read comes back short or empty. The
/// ptrace engine reads the thread itself (``KernelMemory``); the eBPF engine gives the bytes its kernel program
/// copied, at the addresses they were copied from, so both engines decode arguments with this one decoder.
package protocol TraceeMemory {
    func read(at address: UInt64, count: Int) -> [UInt8]
}

/// A thread's memory read through the kernel (process_vm_readv(2), /proc/PID/mem or PTRACE_PEEKDATA).
struct KernelMemory: TraceeMemory {
    let kernel: any PtraceKernel
    let tid: Int32

    func read(at address: UInt64, count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { kernel.readMemory(tid, at: address, into: $0) }
        guard n > 0 else { return [] }
        if n < count { buffer.removeLast(count - n) }
        return buffer
    }
}

/// A call's arguments as trace shows them (strace's words: `AF_INET`, `SOL_TCP`, `TCP_NODELAY`, a data preview),
/// from the registers at its entry stop, its result and the thread's memory. Pure: it reads memory and nothing
/// else, and what it cannot read becomes an empty preview or a placeholder, never a trap. Shared by both engines
/// (`package`), so they show the same arguments by construction.
package enum SyscallDecoder {
    /// The address that connect(2), bind(2) or sendto(2) names, read at the entry stop (before the call can change
    /// that memory), and how it is shown; nil for other calls.
    package static func address(
        _ call: Syscall, _ r: SyscallRegisters, _ memory: some TraceeMemory
    ) -> (SocketAddress?, String?) {
        switch call {
        case .connect, .bind: readAddress(memory, r.arg2, Int(clamping: r.arg3))
        case .sendto where r.arg5 != 0: readAddress(memory, r.arg5, Int(clamping: r.arg6))
        default: (nil, nil)
        }
    }

    /// The two descriptors socketpair(2) wrote, or -1s when it failed or they cannot be read.
    package static func socketPair(_ r: SyscallRegisters, ok: Bool, _ memory: some TraceeMemory) -> [Int32] {
        ok ? readInt32s(memory, r.arg4, 2) ?? [-1, -1] : [-1, -1]
    }

    /// The arguments of a finished call. `fd` is the descriptor it worked on, `addressText` what ``address(_:_:_:)``
    /// showed at its entry; `made` the descriptors it made: socketpair's two, or accept's new socket (none when
    /// that is not a socket).
    package static func arguments(
        _ call: Syscall, entry r: SyscallRegisters, result: Int64, fd: Int32?, addressText: String?, made: [Int32],
        _ memory: some TraceeMemory
    ) -> [(String, ArgumentValue)] {
        let ok = result >= 0
        let fdArgument: (String, ArgumentValue) = ("fd", .int(Int(fd ?? -1)))
        switch call {
        case .socket:
            let family = Int32(truncatingIfNeeded: r.arg1)
            let type = Int32(truncatingIfNeeded: r.arg2) & 0xf
            return [("domain", .string(familyName(family))), ("type", .string(typeName(type)))]
        case .socketpair:
            let pair = made.count == 2 ? made : [-1, -1]
            let family = Int32(truncatingIfNeeded: r.arg1)
            return [("domain", .string(familyName(family))), ("sv", .string("[\(pair[0]), \(pair[1])]"))]
        case .accept, .accept4:
            return [fdArgument] + made.prefix(1).map { ("newfd", .int(Int($0))) }
        case .dup, .dup2, .dup3, .fcntl:
            return [("oldfd", .int(Int(fd ?? -1)))]
        case .connect, .bind:
            return [fdArgument, ("addr", .string(addressText ?? "?"))]
        case .listen:
            return [fdArgument, ("backlog", .int(Int(Int32(truncatingIfNeeded: r.arg2))))]
        case .shutdown:
            let how = Int32(truncatingIfNeeded: r.arg2)
            return [fdArgument, ("how", .string(["SHUT_RD", "SHUT_WR", "SHUT_RDWR"][Int(max(0, min(how, 2)))]))]
        case .setsockopt, .getsockopt:
            return [fdArgument] + socketOption(call, r, ok: ok, memory)
        case .write, .sendto:
            let count = ok ? Int(result) : Int(clamping: r.arg3)
            let data = bytes(memory, r.arg2, min(count, 256))
            let preview = TextEscaper.preview(data, limit: 256)
            var args = [fdArgument, ("data", ArgumentValue.bytes(count: count, preview: preview))]
            if let a = addressText { args.append(("addr", .string(a))) }
            return args
        case .read, .recvfrom:
            var args = [fdArgument, ("size", ArgumentValue.int(Int(clamping: r.arg3)))]
            if ok {
                let data = bytes(memory, r.arg2, min(Int(result), 256))
                args.append(("data", .bytes(count: Int(result), preview: TextEscaper.preview(data, limit: 256))))
            }
            return args
        default:
            return [fdArgument]
        }
    }

    /// `count` bytes at `address`; none for a null pointer or a count of 0 or less.
    static func bytes(_ memory: some TraceeMemory, _ address: UInt64, _ count: Int) -> [UInt8] {
        guard count > 0, address != 0 else { return [] }
        return memory.read(at: address, count: count)
    }

    /// A sockaddr in the tracee's memory: the IP address and port when it is one, and how to show it.
    static func readAddress(
        _ memory: some TraceeMemory, _ address: UInt64, _ length: Int
    ) -> (SocketAddress?, String?) {
        let bytes = bytes(memory, address, min(max(length, 0), MemoryLayout<sockaddr_storage>.size))
        guard bytes.count >= 2 else { return (nil, nil) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
        if let ip = SocketAddress(storage: storage) { return (ip, ip.description) }
        return (nil, describeAddress(bytes))
    }

    /// A sockaddr that is not an IP one: a Unix socket's path (glibc's name-service lookups connect to
    /// /var/run/nscd/socket, for instance), "@name" for an abstract one, or its family.
    package static func describeAddress(_ bytes: [UInt8]) -> String {
        let family = bytes.count >= 2 ? Int(bytes[0]) | Int(bytes[1]) << 8 : -1
        guard family == Int(AF_UNIX) else { return "family \(family)" }
        let path = bytes.dropFirst(2)
        guard let first = path.first else { return "(unnamed)" }
        if first == 0 {
            return "@" + TextEscaper.escape(path.dropFirst().prefix { $0 != 0 })
        }
        return TextEscaper.escape(path.prefix { $0 != 0 })
    }

    /// A socket option call's level, option and value as strace shows them: names where known (`SOL_TCP`,
    /// `TCP_NODELAY`), an int value, `SO_LINGER`'s two fields, or the text of `TCP_CONGESTION`. A value is read
    /// from the program's memory: what setsockopt was given, or what getsockopt returned.
    static func socketOption(
        _ call: Syscall, _ r: SyscallRegisters, ok: Bool, _ memory: some TraceeMemory
    ) -> [(String, ArgumentValue)] {
        let level = Int32(truncatingIfNeeded: r.arg2)
        let option = Int32(truncatingIfNeeded: r.arg3)
        var args: [(String, ArgumentValue)] = [
            ("level", SocketOptionNames.level(level).map { .string($0) } ?? .int(Int(level))),
            ("option", SocketOptionNames.option(level: level, option).map { .string($0) } ?? .int(Int(option))),
        ]
        guard ok, r.arg4 != 0 else { return args }
        // setsockopt is given the length; getsockopt returns it through a pointer.
        guard let length = call == .getsockopt ? readInt32s(memory, r.arg5, 1)?[0] : Int32(truncatingIfNeeded: r.arg5),
            length > 0
        else { return args }
        if SocketOptionNames.isText(level: level, option) {
            let bytes = bytes(memory, r.arg4, min(Int(length), 64))
            args.append(("value", .string(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))))
        } else if SocketOptionNames.isLinger(level: level, option), length >= 8, let l = readInt32s(memory, r.arg4, 2) {
            args += [("l_onoff", .int(Int(l[0]))), ("l_linger", .int(Int(l[1])))]
        } else if length == 4, let v = readInt32s(memory, r.arg4, 1) {
            args.append(("value", .int(Int(v[0]))))
        }
        return args
    }

    /// `n` ints from the program's memory (a socketpair's descriptors, a socket option), or nil when unreadable.
    static func readInt32s(_ memory: some TraceeMemory, _ address: UInt64, _ n: Int) -> [Int32]? {
        let bytes = bytes(memory, address, 4 * n)
        guard bytes.count == 4 * n else { return nil }
        return bytes.withUnsafeBytes { raw in
            (0..<n).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
        }
    }

    package static func familyName(_ f: Int32) -> String {
        switch f {
        case 1: "AF_UNIX"
        case 2: "AF_INET"
        case 10: "AF_INET6"
        case 16: "AF_NETLINK"
        case 17: "AF_PACKET"
        default: "\(f)"
        }
    }

    package static func typeName(_ t: Int32) -> String {
        switch t {
        case 1: "SOCK_STREAM"
        case 2: "SOCK_DGRAM"
        case 3: "SOCK_RAW"
        case 5: "SOCK_SEQPACKET"
        default: "\(t)"
        }
    }
}
