/// The names strace prints for `setsockopt`/`getsockopt` levels and options (Linux values, from the kernel's
/// uapi headers): `SOL_TCP`, `TCP_NODELAY`. Options nobody sets by hand are left as numbers.
public enum SocketOptionNames {
    public static let solIP: Int32 = 0
    public static let solSocket: Int32 = 1
    public static let solTCP: Int32 = 6
    public static let solUDP: Int32 = 17
    public static let solIPv6: Int32 = 41

    /// "SOL_SOCKET", "SOL_TCP", … or nil for a level without a name here.
    public static func level(_ level: Int32) -> String? {
        switch level {
        case solIP: "SOL_IP"
        case solSocket: "SOL_SOCKET"
        case solTCP: "SOL_TCP"
        case solUDP: "SOL_UDP"
        case solIPv6: "SOL_IPV6"
        default: nil
        }
    }

    /// "SO_REUSEADDR", "TCP_NODELAY", … or nil.
    public static func option(level: Int32, _ option: Int32) -> String? {
        let table: [Int32: String]
        switch level {
        case solSocket: table = socket
        case solTCP: table = tcp
        case solIP: table = ip
        case solIPv6: table = ipv6
        case solUDP: table = [1: "UDP_CORK", 100: "UDP_ENCAP", 103: "UDP_SEGMENT", 104: "UDP_GRO"]
        default: return nil
        }
        return table[option]
    }

    /// Options whose value is text (`TCP_CONGESTION` "cubic", `SO_BINDTODEVICE` "eth0") rather than an int.
    public static func isText(level: Int32, _ option: Int32) -> Bool {
        (level == solTCP && (option == 13 || option == 31)) || (level == solSocket && option == 25)
    }

    /// `SO_LINGER`: a `struct linger` {l_onoff, l_linger}, two ints.
    public static func isLinger(level: Int32, _ option: Int32) -> Bool { level == solSocket && option == 13 }

    static let socket: [Int32: String] = [
        1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE", 6: "SO_BROADCAST",
        7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE", 10: "SO_OOBINLINE", 11: "SO_NO_CHECK", 12: "SO_PRIORITY",
        13: "SO_LINGER", 15: "SO_REUSEPORT", 16: "SO_PASSCRED", 17: "SO_PEERCRED", 18: "SO_RCVLOWAT",
        19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO_OLD", 21: "SO_SNDTIMEO_OLD", 25: "SO_BINDTODEVICE", 26: "SO_ATTACH_FILTER",
        29: "SO_TIMESTAMP_OLD", 30: "SO_ACCEPTCONN", 32: "SO_SNDBUFFORCE", 33: "SO_RCVBUFFORCE",
        35: "SO_TIMESTAMPNS_OLD", 36: "SO_MARK", 37: "SO_TIMESTAMPING_OLD", 38: "SO_PROTOCOL", 39: "SO_DOMAIN",
        46: "SO_BUSY_POLL", 47: "SO_MAX_PACING_RATE", 50: "SO_ATTACH_BPF", 57: "SO_COOKIE", 60: "SO_ZEROCOPY",
        62: "SO_BINDTOIFINDEX", 66: "SO_RCVTIMEO_NEW", 67: "SO_SNDTIMEO_NEW",
    ]

    static let tcp: [Int32: String] = [
        1: "TCP_NODELAY", 2: "TCP_MAXSEG", 3: "TCP_CORK", 4: "TCP_KEEPIDLE", 5: "TCP_KEEPINTVL", 6: "TCP_KEEPCNT",
        7: "TCP_SYNCNT", 8: "TCP_LINGER2", 9: "TCP_DEFER_ACCEPT", 10: "TCP_WINDOW_CLAMP", 11: "TCP_INFO",
        12: "TCP_QUICKACK", 13: "TCP_CONGESTION", 14: "TCP_MD5SIG", 18: "TCP_USER_TIMEOUT", 19: "TCP_REPAIR",
        23: "TCP_FASTOPEN", 24: "TCP_TIMESTAMP", 25: "TCP_NOTSENT_LOWAT", 30: "TCP_FASTOPEN_CONNECT", 31: "TCP_ULP",
        35: "TCP_ZEROCOPY_RECEIVE", 36: "TCP_INQ", 37: "TCP_TX_DELAY",
    ]

    static let ip: [Int32: String] = [
        1: "IP_TOS", 2: "IP_TTL", 3: "IP_HDRINCL", 4: "IP_OPTIONS", 8: "IP_PKTINFO", 10: "IP_MTU_DISCOVER",
        11: "IP_RECVERR", 12: "IP_RECVTTL", 13: "IP_RECVTOS", 14: "IP_MTU", 15: "IP_FREEBIND", 19: "IP_TRANSPARENT",
        24: "IP_BIND_ADDRESS_NO_PORT", 32: "IP_MULTICAST_IF", 33: "IP_MULTICAST_TTL", 34: "IP_MULTICAST_LOOP",
        35: "IP_ADD_MEMBERSHIP", 36: "IP_DROP_MEMBERSHIP", 49: "IP_MULTICAST_ALL",
    ]

    static let ipv6: [Int32: String] = [
        16: "IPV6_UNICAST_HOPS", 17: "IPV6_MULTICAST_IF", 18: "IPV6_MULTICAST_HOPS", 19: "IPV6_MULTICAST_LOOP",
        20: "IPV6_ADD_MEMBERSHIP", 21: "IPV6_DROP_MEMBERSHIP", 23: "IPV6_MTU_DISCOVER", 24: "IPV6_MTU",
        25: "IPV6_RECVERR", 26: "IPV6_V6ONLY", 49: "IPV6_RECVPKTINFO", 62: "IPV6_DONTFRAG", 67: "IPV6_TCLASS",
    ]
}
