import Glibc
import PacketWire

/// The kernel's table of TCP connections (`/proc/net/tcp` and `/proc/net/tcp6`), for the state of a connection
/// whose descriptor is already closed: FIN_WAIT2, TIME_WAIT and LAST_ACK outlive `close(2)`, and `TCP_INFO` needs
/// an open descriptor.
public enum KernelTCPTable {
    /// One row of the table.
    public struct Entry: Sendable, Hashable {
        public var local: SocketAddress
        public var remote: SocketAddress
        public var state: TCPState
        /// The socket's inode: the number in `socket:[inode]` of /proc/PID/fd (0 for TIME_WAIT, which has none).
        public var inode: UInt64

        public init(local: SocketAddress, remote: SocketAddress, state: TCPState, inode: UInt64) {
            self.local = local
            self.remote = remote
            self.state = state
            self.inode = inode
        }
    }

    /// The state of the connection between `local` and `remote` (any remote when nil), or nil when the kernel no
    /// longer has it.
    public static func state(local: SocketAddress, remote: SocketAddress?) -> TCPState? {
        // Asked after every lab step: sock_diag's binary dump, not /proc/net/tcp, whose text runs to tens of
        // thousands of TIME_WAIT rows after a busy minute (200 ms to print and parse).
        let rows =
            SocketDiag.tcpSockets(inStates: SocketDiag.statesWithDescriptors + [.timeWait])
            ?? entries(local.ip.isIPv6 ? "/proc/net/tcp6" : "/proc/net/tcp")
        for entry in rows where entry.local == local {
            if let remote, entry.remote != remote { continue }
            return entry.state
        }
        return nil
    }

    /// The TCP or UDP socket with this inode in the network namespace of process `pid` (/proc/PID/net/tcp, tcp6,
    /// udp, udp6), with its family and type (AF_INET or AF_INET6; SOCK_STREAM or SOCK_DGRAM); nil when no table
    /// lists it (a socket neither bound to a port nor connected). The same three answers getsockname,
    /// getpeername and TCP_INFO give, for a socket of another process when its descriptor cannot be duplicated.
    public static func socket(inode: UInt64, inNetworkOf pid: Int32) -> (entry: Entry, family: Int32, type: Int32)? {
        // sock_diag first: /proc/net/tcp also lists every TIME_WAIT connection, tens of thousands after a busy
        // minute, and this is asked at every call. It answers for this process's network namespace, which is the
        // program's unless it moved; the /proc tables of `pid` below are the program's own.
        for (proto, type) in [(UInt8(IPPROTO_TCP), Int32(1)), (UInt8(IPPROTO_UDP), Int32(2))] {
            if let entry = SocketDiag.sockets(protocol: proto, inStates: SocketDiag.statesWithDescriptors)?
                .first(where: { $0.inode == inode })
            {
                return (entry, entry.local.ip.isIPv6 ? 10 : 2, type)
            }
        }
        let tables: [(String, Int32, Int32)] = [("tcp", 2, 1), ("tcp6", 10, 1), ("udp", 2, 2), ("udp6", 10, 2)]
        for (name, family, type) in tables {
            if let entry = entries("/proc/\(pid)/net/\(name)").first(where: { $0.inode == inode }) {
                return (entry, family, type)
            }
        }
        return nil
    }

    /// Every row of one table file.
    public static func entries(_ path: String) -> [Entry] {
        guard let text = ProcFiles.contents(path) else { return [] }
        var out: [Entry] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, let local = parseAddress(fields[1]), let remote = parseAddress(fields[2]),
                let st = UInt8(fields[3], radix: 16), let inode = UInt64(fields[9])
            else { continue }
            out.append(Entry(local: local, remote: remote, state: TCPState(rawValue: st), inode: inode))
        }
        return out
    }

    /// "0200007F:C000" (IPv4 as one host-order word) or 32 hex digits (IPv6 as four host-order words).
    static func parseAddress(_ field: Substring) -> SocketAddress? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        func word(_ i: Int) -> UInt32? {
            let start = hex.index(hex.startIndex, offsetBy: i * 8)
            let end = hex.index(start, offsetBy: 8)
            // The kernel prints each 32-bit word in host byte order; convert to network order.
            return UInt32(hex[start..<end], radix: 16).map { UInt32(bigEndian: $0) }
        }
        switch hex.count {
        case 8:
            guard let w = word(0) else { return nil }
            return SocketAddress(ip: .v4(w), port: port)
        case 32:
            guard let a = word(0), let b = word(1), let c = word(2), let d = word(3) else { return nil }
            return SocketAddress(
                ip: .v6(UInt64(a) << 32 | UInt64(b), UInt64(c) << 32 | UInt64(d)), port: port)
        default:
            return nil
        }
    }
}
