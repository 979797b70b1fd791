import CTraceShims
import Glibc
import PacketWire
import Sockets
import Timeline

extension Tracer {
    static func readMemory(_ pid: Int32, _ address: UInt64, _ length: Int) -> [UInt8] {
        guard length > 0, address != 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: length)
        let n = buffer.withUnsafeMutableBytes { ctrace_read_memory(pid, UInt(address), $0.baseAddress, length) }
        guard n > 0 else { return [] }
        if n < length { buffer.removeLast(length - n) }
        return buffer
    }

    /// A sockaddr in the tracee's memory: the IP address and port when it is one, and how to show it.
    static func readAddress(_ pid: Int32, _ address: UInt64, _ length: Int) -> (SocketAddress?, String?) {
        let bytes = readMemory(pid, address, min(max(length, 0), MemoryLayout<sockaddr_storage>.size))
        guard bytes.count >= 2 else { return (nil, nil) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
        if let ip = SocketAddress(storage: storage) { return (ip, ip.description) }
        return (nil, describeAddress(bytes))
    }

    /// A sockaddr that is not an IP one: a Unix socket's path (glibc's name-service lookups connect to
    /// /var/run/nscd/socket, for instance), "@name" for an abstract one, or its family.
    static func describeAddress(_ bytes: [UInt8]) -> String {
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
    static func socketOption(tid: Int32, _ call: Syscall, _ r: ctrace_regs, ok: Bool) -> [(String, ArgumentValue)] {
        let level = Int32(truncatingIfNeeded: r.rsi)
        let option = Int32(truncatingIfNeeded: r.rdx)
        var args: [(String, ArgumentValue)] = [
            ("level", SocketOptionNames.level(level).map { .string($0) } ?? .int(Int(level))),
            ("option", SocketOptionNames.option(level: level, option).map { .string($0) } ?? .int(Int(option))),
        ]
        guard ok, r.r10 != 0 else { return args }
        // setsockopt is given the length; getsockopt returns it through a pointer.
        guard let length = call == .getsockopt ? readInt32s(tid, r.r8, 1)?[0] : Int32(truncatingIfNeeded: r.r8),
            length > 0
        else { return args }
        if SocketOptionNames.isText(level: level, option) {
            let bytes = readMemory(tid, r.r10, min(Int(length), 64))
            args.append(("value", .string(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))))
        } else if SocketOptionNames.isLinger(level: level, option), length >= 8, let l = readInt32s(tid, r.r10, 2) {
            args += [("l_onoff", .int(Int(l[0]))), ("l_linger", .int(Int(l[1])))]
        } else if length == 4, let v = readInt32s(tid, r.r10, 1) {
            args.append(("value", .int(Int(v[0]))))
        }
        return args
    }

    /// `n` ints from the program's memory (a socketpair's descriptors, a socket option), or nil when unreadable.
    static func readInt32s(_ pid: Int32, _ address: UInt64, _ n: Int) -> [Int32]? {
        let bytes = readMemory(pid, address, 4 * n)
        guard bytes.count == 4 * n else { return nil }
        return bytes.withUnsafeBytes { raw in (0..<n).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) } }
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
