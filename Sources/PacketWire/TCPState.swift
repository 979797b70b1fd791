/// The state of a TCP socket as the Linux kernel numbers it (`include/net/tcp_states.h`): what Sockets reads with
/// `TCP_INFO` and sock_diag, and what the timeline shows after each call.
///
/// Values the table does not know are kept as ``unknown(_:)`` rather than dropped.
public enum TCPState: Hashable, Sendable, CustomStringConvertible {
    case established
    case synSent
    case synReceived
    case finWait1
    case finWait2
    case timeWait
    /// `TCP_CLOSE`: no connection (a fresh socket, or one the peer reset). Named "CLOSED" as in RFC 793.
    case closed
    case closeWait
    case lastAck
    case listen
    case closing
    /// A request socket during the handshake (Linux 4.4+); only seen through `inet_diag`, not on an fd.
    case newSynReceived
    case unknown(UInt8)

    public init(rawValue: UInt8) {
        switch rawValue {
        case 1: self = .established
        case 2: self = .synSent
        case 3: self = .synReceived
        case 4: self = .finWait1
        case 5: self = .finWait2
        case 6: self = .timeWait
        case 7: self = .closed
        case 8: self = .closeWait
        case 9: self = .lastAck
        case 10: self = .listen
        case 11: self = .closing
        case 12: self = .newSynReceived
        default: self = .unknown(rawValue)
        }
    }

    /// The kernel's number for the state (`TCP_ESTABLISHED` = 1 ... `TCP_NEW_SYN_RECV` = 12).
    public var rawValue: UInt8 {
        switch self {
        case .established: 1
        case .synSent: 2
        case .synReceived: 3
        case .finWait1: 4
        case .finWait2: 5
        case .timeWait: 6
        case .closed: 7
        case .closeWait: 8
        case .lastAck: 9
        case .listen: 10
        case .closing: 11
        case .newSynReceived: 12
        case .unknown(let value): value
        }
    }

    /// The name `ss(8)` and `netstat(8)` print, e.g. "ESTABLISHED", "FIN_WAIT1", "CLOSED".
    public var name: String {
        switch self {
        case .established: "ESTABLISHED"
        case .synSent: "SYN_SENT"
        case .synReceived: "SYN_RECV"
        case .finWait1: "FIN_WAIT1"
        case .finWait2: "FIN_WAIT2"
        case .timeWait: "TIME_WAIT"
        case .closed: "CLOSED"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .listen: "LISTEN"
        case .closing: "CLOSING"
        case .newSynReceived: "NEW_SYN_RECV"
        case .unknown(let value): "UNKNOWN(\(value))"
        }
    }

    public var description: String { name }
}
