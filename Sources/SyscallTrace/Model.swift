import PacketWire
import Sockets
import SystemCalls
import Timeline

/// One socket the traced programs used, named by inode, with what the tracer learnt about it.
public struct SocketRecord: Sendable, Equatable {
    public var inode: UInt64
    /// AF_INET, AF_INET6, AF_UNIX, ... (0 when unknown).
    public var family: Int32
    /// SOCK_STREAM, SOCK_DGRAM, ... without the flag bits (0 when unknown).
    public var type: Int32
    public var local: SocketAddress?
    public var remote: SocketAddress?
    /// "python3[1234]": the process that created or first used it.
    public var owner: String
    public var listening = false

    public init(inode: UInt64, family: Int32, type: Int32, owner: String) {
        self.inode = inode
        self.family = family
        self.type = type
        self.owner = owner
    }

    public var isTCP: Bool { type == 1 && (family == 2 || family == 10) }
    public var isUDP: Bool { type == 2 && (family == 2 || family == 10) }
}

/// One traced system call on a socket, with everything needed to render it and attribute packets to it.
public struct TracedCall: Sendable {
    public var id: Int
    public var pid: Int32
    public var tid: Int32
    public var comm: String
    public var syscall: Syscall
    public var fd: Int32?
    /// The socket (inode) the call worked on or created.
    public var socket: UInt64?
    public var args: [(String, ArgumentValue)] = []
    /// The raw return value: >= 0 on success, -errno on failure.
    public var returnValue: Int64
    public var start: Timestamp
    public var end: Timestamp
    /// "client.py:20 client.connect((HOST, D_PORT_NO))" from the Python hook.
    public var source: String?
    public var local: SocketAddress?
    public var remote: SocketAddress?
    public var state: TCPState?
    /// shutdown(2)'s `how`.
    public var how: Int32?

    public init(
        id: Int, pid: Int32, tid: Int32, comm: String, syscall: Syscall, returnValue: Int64,
        start: Timestamp, end: Timestamp
    ) {
        self.id = id
        self.pid = pid
        self.tid = tid
        self.comm = comm
        self.syscall = syscall
        self.returnValue = returnValue
        self.start = start
        self.end = end
    }

    public var succeeded: Bool { returnValue >= 0 }
    public var actor: String { "\(comm)[\(pid)]" }

    /// Bytes moved by a successful send or receive call.
    public var byteCount: Int { succeeded && (syscall.sends || syscall.receives) ? Int(returnValue) : 0 }

    /// Kernel-internal restart codes reach a tracer when a signal interrupts a blocking call.
    static func errnoName(_ e: Int32) -> String {
        switch e {
        case 512: "ERESTARTSYS"
        case 513: "ERESTARTNOINTR"
        case 514: "ERESTARTNOHAND"
        case 516: "ERESTART_RESTARTBLOCK"
        default: Errno(rawValue: e).name
        }
    }

    /// The timeline's view of the call (the JSON Lines `call` object with the trace fields).
    public var event: CallEvent {
        var e = CallEvent(
            id: id, actor: actor, name: syscall.name, args: args, result: succeeded ? Int(returnValue) : nil,
            errno: succeeded ? nil : Self.errnoName(Int32(truncatingIfNeeded: -returnValue)), start: start, end: end,
            local: local?.description, remote: remote?.description,
            tcpStates: state.map { [("fd \(fd ?? -1)", $0)] } ?? [])
        e.pid = Int(pid)
        e.tid = Int(tid)
        e.comm = comm
        e.fd = fd.map(Int.init)
        e.source = source
        return e
    }
}
