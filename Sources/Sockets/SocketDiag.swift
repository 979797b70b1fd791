import Glibc
import PacketWire
import SystemCalls

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
        records(protocol: `protocol`, inStates: states)?.map(\.entry)
    }

    /// A socket as sock_diag describes it: its row of the table, and its timer and owner (what `ss -tnoe` shows).
    public struct Record: Sendable, Hashable {
        public var entry: KernelTCPTable.Entry
        /// `idiag_timer`: 0 none, 1 retransmission, 2 keep-alive, 3 TIME_WAIT, 4 zero-window probe.
        public var timer: UInt8
        /// How long until that timer fires (`idiag_expires`); for a TIME_WAIT socket, until the kernel frees it.
        public var expires: Duration
        /// The owner's user id (`idiag_uid`); 0 for a TIME_WAIT socket, which no process owns.
        public var uid: UInt32

        public init(entry: KernelTCPTable.Entry, timer: UInt8, expires: Duration, uid: UInt32) {
            self.entry = entry
            self.timer = timer
            self.expires = expires
            self.uid = uid
        }
    }

    /// Like ``sockets(protocol:inStates:)``, with each socket's timer and owner.
    public static func records(protocol: UInt8, inStates states: [TCPState]) -> [Record]? {
        let mask = states.reduce(UInt32(0)) { $0 | (1 << UInt32($1.rawValue & 31)) }
        let fd = socket(
            AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Linux.NETLINK_SOCK_DIAG)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [Record] = []
        for family in [UInt8(AF_INET), UInt8(AF_INET6)] {
            guard sendToKernel(fd, request(family: family, protocol: `protocol`, states: mask)),
                receive(fd, into: &out)
            else { return nil }
        }
        return out
    }

    /// nlmsghdr + inet_diag_req_v2 for a dump of one family's sockets of one protocol in `states`.
    static func request(family: UInt8, protocol: UInt8, states: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16 + 56)
        func put32(_ value: UInt32, at offset: Int) { putNative32(value, at: offset, in: &bytes) }
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

    /// Writes `value` in the host's byte order (little-endian on x86_64), as netlink headers carry it.
    public static func putNative32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    /// Reads the kernel's acknowledgment of a request sent with NLM_F_ACK on `fd`: nil when it succeeded, else its
    /// error (an NLMSG_ERROR whose error field is 0, or minus the errno).
    public static func acknowledgment(_ fd: Int32) -> Errno? {
        var reply = [UInt8](repeating: 0, count: 1024)
        let n: Int
        do throws(Errno) {
            n = try syscall { reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        } catch {
            return error
        }
        guard n > 0 else { return .invalidArgument }
        let answer: Int32? = reply.withUnsafeBytes { raw in
            let view = ByteView(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
            guard view.u16le(4) == 2, let code = view.u32le(16) else { return nil }
            return Int32(bitPattern: code)
        }
        guard let answer else { return .invalidArgument }
        return answer == 0 ? nil : Errno(rawValue: -answer)
    }

    /// Sends one netlink request to the kernel on `fd`; true when all of it went.
    public static func sendToKernel(_ fd: Int32, _ message: [UInt8]) -> Bool {
        // sockaddr_nl of the kernel: nl_family = AF_NETLINK, nl_pad, nl_pid = 0, nl_groups = 0 (Glibc's module
        // does not import linux/netlink.h).
        var kernel = [UInt8](repeating: 0, count: 12)
        kernel[0] = UInt8(AF_NETLINK)
        let sent = message.withUnsafeBytes { bytes in
            kernel.withUnsafeMutableBytes {
                sendto(
                    fd, bytes.baseAddress, bytes.count, 0, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                    socklen_t($0.count))
            }
        }
        return sent == message.count
    }

    /// Reads the dump's replies until NLMSG_DONE; false on an error or a malformed reply.
    static func receive(_ fd: Int32, into out: inout [Record]) -> Bool {
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
        var records: [Record] = []
        guard let done = parse(ByteView(bytes), into: &records) else { return nil }
        return (records.map(\.entry), done)
    }

    /// One datagram of netlink messages: true after NLMSG_DONE, false when more follow, nil when malformed or an
    /// NLMSG_ERROR.
    static func parse(_ data: ByteView, into out: inout [Record]) -> Bool? {
        var offset = 0
        while offset < data.count {
            guard let length = data.u32le(offset), let type = data.u16le(offset + 4), length >= 16,
                let message = data.slice(offset, Int(length))
            else { return nil }
            switch type {
            case 3: return true  // NLMSG_DONE
            case 2: return nil  // NLMSG_ERROR
            case 20:
                guard let record = record(message.suffix(from: 16)) else { return nil }
                out.append(record)
            default: break
            }
            offset += (Int(length) + 3) & ~3
        }
        return false
    }

    /// inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports and addresses in network order,
    /// interface, cookie), expires (ms), rqueue, wqueue, uid, inode.
    static func record(_ body: ByteView?) -> Record? {
        guard let body, let family = body.u8(0), let state = body.u8(1), let timer = body.u8(2),
            let sport = body.u16(4), let dport = body.u16(6), let expires = body.u32le(52), let uid = body.u32le(64),
            let inode = body.u32le(68)
        else { return nil }
        func address(_ at: Int) -> IPAddress? {
            if family == UInt8(AF_INET) { return body.u32(at).map { .v4($0) } }
            guard let hi = body.u64(at), let lo = body.u64(at + 8) else { return nil }
            return .v6(hi, lo)
        }
        guard let src = address(8), let dst = address(24) else { return nil }
        let entry = KernelTCPTable.Entry(
            local: SocketAddress(ip: src, port: sport), remote: SocketAddress(ip: dst, port: dport),
            state: TCPState(rawValue: state), inode: UInt64(inode))
        return Record(entry: entry, timer: timer, expires: .milliseconds(expires), uid: uid)
    }
}

extension SocketDiag {
    /// A TCP socket that keeps `bind(2)` from having an address, and the processes that hold it.
    public struct PortHolder: Sendable, Hashable {
        public var record: Record
        /// The processes with a descriptor for the socket; empty for TIME_WAIT (no process has one) and when
        /// /proc/PID/fd of the owner cannot be read (another user's process, without root).
        public var processes: [Process]

        /// A process, as `ps` names it.
        public struct Process: Sendable, Hashable {
            public var pid: Int32
            /// The command name (/proc/PID/comm).
            public var command: String

            public init(pid: Int32, command: String) {
                self.pid = pid
                self.command = command
            }
        }

        public init(record: Record, processes: [Process]) {
            self.record = record
            self.processes = processes
        }
    }

    /// The TCP sockets, of any state, bound to `address`'s port on its IP or on the wildcard address of either
    /// family (a listener on 0.0.0.0 or [::] takes the port on every address), with the processes holding each.
    /// nil when sock_diag cannot be asked. The sockets are those of the calling thread's network namespace.
    public static func holders(of address: SocketAddress) -> [PortHolder]? {
        tcpRecordsForHolders().map { holders(of: address, in: $0) }
    }

    /// Every TCP socket that can hold a port (with a descriptor, or in TIME_WAIT): what ``holders(of:in:)`` reads.
    public static func tcpRecordsForHolders() -> [Record]? {
        records(protocol: UInt8(IPPROTO_TCP), inStates: statesWithDescriptors + [.timeWait])
    }

    /// ``holders(of:)`` from records already read (one dump for several questions).
    public static func holders(of address: SocketAddress, in records: [Record]) -> [PortHolder] {
        let matching = records.filter {
            $0.entry.local.port == address.port && sameOrWildcard($0.entry.local.ip, address.ip)
        }
        let owners = processes(holding: Set(matching.map(\.entry.inode).filter { $0 != 0 }))
        return matching.map { PortHolder(record: $0, processes: owners[$0.entry.inode] ?? []) }
    }

    /// Whether a socket bound to `bound` takes `wanted`'s port: the same address, a wildcard on either side, or
    /// an IPv4 address and its IPv4-mapped IPv6 form.
    public static func sameOrWildcard(_ bound: IPAddress, _ wanted: IPAddress) -> Bool {
        func plain(_ ip: IPAddress) -> IPAddress {
            if case .v6(0, let low) = ip, low >> 32 == 0xffff { return .v4(UInt32(truncatingIfNeeded: low)) }
            return ip
        }
        let any: Set<IPAddress> = [.anyV4, .anyV6]
        return any.contains(bound) || any.contains(wanted) || plain(bound) == plain(wanted)
    }

    /// The processes with a descriptor for each socket inode in `inodes`, from /proc/PID/fd (readable for every
    /// process by root, for one's own otherwise).
    static func processes(holding inodes: Set<UInt64>) -> [UInt64: [PortHolder.Process]] {
        guard !inodes.isEmpty else { return [:] }
        var found: [UInt64: [PortHolder.Process]] = [:]
        for name in ProcFiles.names(in: "/proc") {
            guard let pid = Int32(name) else { continue }
            var seen: Set<UInt64> = []
            for fd in ProcFiles.names(in: "/proc/\(pid)/fd") {
                guard let target = ProcFiles.linkTarget("/proc/\(pid)/fd/\(fd)"), target.hasPrefix("socket:["),
                    let inode = UInt64(target.dropFirst(8).dropLast()), inodes.contains(inode), !seen.contains(inode)
                else { continue }
                seen.insert(inode)
                let command = ProcFiles.contents("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init)
                found[inode, default: []].append(PortHolder.Process(pid: pid, command: command ?? "?"))
            }
        }
        return found
    }
}
