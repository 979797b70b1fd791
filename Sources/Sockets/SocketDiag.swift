import Glibc
import PacketWire

/// The kernel's TCP sockets through sock_diag(7) netlink (`NETLINK_SOCK_DIAG`, inet_diag), filtered by state in
/// the kernel.
///
/// /proc/net/tcp lists every socket as text, TIME_WAIT ones included: after a busy minute on loopback that is tens
/// of thousands of rows and tens of milliseconds to produce and parse. A dump asked for a few states returns only
/// those sockets, in binary.
public enum SocketDiag {
    /// TCP sockets (IPv4 and IPv6) whose state is one of `states`; nil when the kernel cannot be asked (no netlink,
    /// or a seccomp profile that refuses it).
    public static func tcpSockets(inStates states: [TCPState]) -> [KernelTCPTable.Entry]? {
        sockets(protocol: UInt8(IPPROTO_TCP), inStates: states)
    }

    /// Every state but TIME_WAIT: the sockets that can have a descriptor (a TIME_WAIT one has none).
    public static let statesWithDescriptors: [TCPState] = [
        .established, .synSent, .synReceived, .finWait1, .finWait2, .closed, .closeWait, .lastAck, .listen,
        .closing, .newSynReceived,
    ]

    /// Sockets of `protocol` (IPPROTO_TCP, or IPPROTO_UDP where the kernel has udp_diag) in `states`.
    public static func sockets(protocol: UInt8, inStates states: [TCPState]) -> [KernelTCPTable.Entry]? {
        let mask = states.reduce(UInt32(0)) { $0 | (1 << UInt32($1.rawValue & 31)) }
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [KernelTCPTable.Entry] = []
        for family in [UInt8(AF_INET), UInt8(AF_INET6)] {
            guard send(fd, request(family: family, protocol: `protocol`, states: mask)), receive(fd, into: &out)
            else { return nil }
        }
        return out
    }

    /// nlmsghdr + inet_diag_req_v2 for a dump of one family's sockets of one protocol in `states`.
    static func request(family: UInt8, protocol: UInt8, states: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16 + 56)
        func put32(_ value: UInt32, at offset: Int) {
            for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        }
        put32(UInt32(bytes.count), at: 0)  // nlmsg_len
        bytes[4] = 20  // nlmsg_type: SOCK_DIAG_BY_FAMILY
        bytes[6] = 0x01  // nlmsg_flags: NLM_F_REQUEST
        bytes[7] = 0x03  // NLM_F_DUMP (0x300)
        put32(1, at: 8)  // nlmsg_seq
        bytes[16] = family
        bytes[17] = `protocol`
        put32(states, at: 20)  // idiag_states
        return bytes
    }

    static func send(_ fd: Int32, _ message: [UInt8]) -> Bool {
        // sockaddr_nl of the kernel: nl_family = AF_NETLINK, nl_pad, nl_pid = 0, nl_groups = 0 (Glibc's module
        // does not import linux/netlink.h).
        var kernel = [UInt8](repeating: 0, count: 12)
        kernel[0] = UInt8(AF_NETLINK)
        let sent = message.withUnsafeBytes { bytes in
            kernel.withUnsafeMutableBytes {
                sendto(fd, bytes.baseAddress, bytes.count, 0, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                       socklen_t($0.count))
            }
        }
        return sent == message.count
    }

    /// Reads the dump's replies until NLMSG_DONE; false on an error or a malformed reply.
    static func receive(_ fd: Int32, into out: inout [KernelTCPTable.Entry]) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            let done: Bool? = buffer.withUnsafeBytes { raw in
                parse(ByteView(UnsafeRawBufferPointer(rebasing: raw[0..<n])), into: &out)
            }
            guard let done else { return false }
            if done { return true }
        }
    }

    /// One datagram of a dump's replies, read by the same code as a live dump: the sockets in it, whether it ended
    /// the dump (NLMSG_DONE), or nil when it is malformed or an NLMSG_ERROR. For tests and fuzzing.
    public static func parseReply(_ bytes: UnsafeRawBufferPointer) -> (entries: [KernelTCPTable.Entry], done: Bool)? {
        var entries: [KernelTCPTable.Entry] = []
        guard let done = parse(ByteView(bytes), into: &entries) else { return nil }
        return (entries, done)
    }

    /// One datagram of netlink messages: true after NLMSG_DONE, false when more follow, nil when malformed or an
    /// NLMSG_ERROR.
    static func parse(_ data: ByteView, into out: inout [KernelTCPTable.Entry]) -> Bool? {
        var offset = 0
        while offset < data.count {
            guard let length = data.u32le(offset), let type = data.u16le(offset + 4), length >= 16,
                let message = data.slice(offset, Int(length))
            else { return nil }
            switch type {
            case 3: return true  // NLMSG_DONE
            case 2: return nil  // NLMSG_ERROR
            case 20:
                guard let entry = entry(message.suffix(from: 16)) else { return nil }
                out.append(entry)
            default: break
            }
            offset += (Int(length) + 3) & ~3
        }
        return false
    }

    /// inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports and addresses in network order),
    /// expires, rqueue, wqueue, uid, inode.
    static func entry(_ body: ByteView?) -> KernelTCPTable.Entry? {
        guard let body, let family = body.u8(0), let state = body.u8(1), let sport = body.u16(4),
            let dport = body.u16(6), let inode = body.u32le(68)
        else { return nil }
        func address(_ at: Int) -> IPAddress? {
            if family == UInt8(AF_INET) { return body.u32(at).map { .v4($0) } }
            guard let hi = body.u64(at), let lo = body.u64(at + 8) else { return nil }
            return .v6(hi, lo)
        }
        guard let src = address(8), let dst = address(24) else { return nil }
        return KernelTCPTable.Entry(
            local: SocketAddress(ip: src, port: sport), remote: SocketAddress(ip: dst, port: dport),
            state: TCPState(rawValue: state), inode: UInt64(inode))
    }
}
