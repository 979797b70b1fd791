/// KernelTrace: the eBPF trace engine. A BPF program in the kernel (CKernelTrace/bpf/kernel_trace.bpf.c) records
/// the socket calls of a launched or attached program and everything it forks, and, for each packet of theirs,
/// which task, which call and which socket were running when the kernel built it; this module loads that program,
/// registers the program to trace, drains the records and returns them as values.
///
/// Contract: nothing the traced program does can make this module trap. Records are decoded from the ring buffer
/// by their C layout after a size check; a record shorter than its layout is counted and dropped, never read
/// past. What the kernel side lost (ring buffer full, memory it could not read) is reported in the run's
/// warnings, not dropped silently. Times are CLOCK_REALTIME, the clock of libpcap's timestamps.
import PacketWire
import Sockets

/// A socket as the kernel described it when a call used it: `pointer` (its `struct sock *`) is what packets name
/// (skb->sk), `inode` what /proc and the ptrace engine name (`socket:[inode]`).
public struct KernelSocket: Sendable, Hashable {
    public var pointer: UInt64
    public var inode: UInt64
    /// AF_INET, AF_INET6, AF_UNIX, ...
    public var family: Int32
    /// SOCK_STREAM, SOCK_DGRAM, ...
    public var type: Int32
    /// IPPROTO_TCP, IPPROTO_UDP, ...
    public var ipProtocol: Int32
    /// The kernel's state number (for TCP, ``TCPState``'s numbering).
    public var state: UInt8
    /// nil for a socket that is not IPv4/IPv6; port 0 while unbound.
    public var local: SocketAddress?
    /// nil while not connected.
    public var remote: SocketAddress?

    public var isTCP: Bool { type == 1 && (family == 2 || family == 10) }
    public var isUDP: Bool { type == 2 && (family == 2 || family == 10) }
    public var tcpState: TCPState? { isTCP ? TCPState(rawValue: state) : nil }
}

/// One socket call of a traced thread, as the BPF program saw it enter and leave the kernel.
public struct KernelCall: Sendable {
    /// 1, 2, 3... in the order the calls started (as the ptrace engine numbers them).
    public var number: Int
    /// The BPF program's id (entry order across every CPU); packets name calls by it.
    public var kernelID: UInt64
    /// Process and thread ids in the tracer's pid namespace (0 when the task is not visible from it).
    public var pid: Int32
    public var tid: Int32
    public var comm: String
    /// The x86_64 system call number.
    public var syscallNumber: Int32
    /// The descriptor argument; for socket(2), accept(2) and accept4(2) the descriptor they returned (nil when
    /// they failed), as the ptrace engine records it.
    public var fd: Int32?
    /// The descriptor argument as passed (nil for socket and socketpair).
    public var fdArgument: Int32?
    public var socket: KernelSocket?
    /// The socket's state number when the call entered.
    public var stateBefore: UInt8?
    /// The six argument registers at entry.
    public var arguments: [UInt64]
    /// >= 0 on success, -errno on failure; -EINTR for a call the thread did not finish (``unfinished``).
    public var returnValue: Int64
    /// The thread died inside the call, or a signal interrupted it and the program saw EINTR.
    public var unfinished: Bool
    public var start: Timestamp
    public var end: Timestamp
    /// The sockaddr of connect/bind/sendto as the program passed it (at most 128 bytes), and where in the
    /// program's memory it was read.
    public var address: [UInt8]
    public var addressAt: UInt64
    /// The first bytes moved (write/sendto/read/recvfrom) or a socket option's value (at most 256 bytes), and
    /// where they were read.
    public var data: [UInt8]
    public var dataAt: UInt64
    /// How many bytes the call moved, or the option's length: `data` may hold fewer.
    public var dataCount: Int
    /// socketpair(2)'s two descriptors, or getsockopt(2)'s returned length, as raw bytes, and where they were read.
    public var words: [UInt8]
    public var wordsAt: UInt64
    /// "client.py:20 client.connect((HOST, PORT))": the Python hook's line for this thread when the call ran.
    public var source: String?

    public var succeeded: Bool { returnValue >= 0 && !unfinished }
}

/// The softirq a CPU was running (include/linux/interrupt.h's numbering).
public enum Softirq: Sendable, Hashable, CustomStringConvertible {
    case hi, timer, netTX, netRX, block, irqPoll, tasklet, sched, hrtimer, rcu
    case unknown(UInt8)

    public init(vector: UInt8) {
        switch vector {
        case 0: self = .hi
        case 1: self = .timer
        case 2: self = .netTX
        case 3: self = .netRX
        case 4: self = .block
        case 5: self = .irqPoll
        case 6: self = .tasklet
        case 7: self = .sched
        case 8: self = .hrtimer
        case 9: self = .rcu
        default: self = .unknown(vector)
        }
    }

    /// The name /proc/softirqs uses: "NET_RX", "TIMER".
    public var description: String {
        switch self {
        case .hi: "HI"
        case .timer: "TIMER"
        case .netTX: "NET_TX"
        case .netRX: "NET_RX"
        case .block: "BLOCK"
        case .irqPoll: "IRQ_POLL"
        case .tasklet: "TASKLET"
        case .sched: "SCHED"
        case .hrtimer: "HRTIMER"
        case .rcu: "RCU"
        case .unknown(let v): "SOFTIRQ_\(v)"
        }
    }
}

/// What was running when the kernel built a packet.
public enum KernelPacketContext: Sendable, Hashable {
    /// Inside traced call `call` (its ``KernelCall/number``); `ownSocket` when the packet belongs to the socket the
    /// call works on (on loopback a call also builds the peer's packets in a softirq, and a call such as accept
    /// may flush another socket's backlog).
    case call(Int, ownSocket: Bool)
    /// In a softirq: NET_RX (an ACK of data, a SYN/ACK of a listener, an ICMP error), TIMER (a delayed ACK, a
    /// retransmission, a keep-alive, a zero-window probe)... `interrupted` is the traced call that the softirq ran
    /// on top of, if any: not the cause, but where in the program it happened.
    case softirq(Softirq, interrupted: Int?)
    /// A traced task outside any traced call: `lastCall` is its previous call, `syscall` the system call it was in
    /// (exit_group: a FIN or RST sent at exit), `exiting` when it was exiting.
    case afterCall(lastCall: Int?, syscall: Int32?, exiting: Bool)
    /// A task that is not traced, in process context (an untraced peer on this host).
    case untraced
}

/// What identifies a packet in a capture of the same wire: the ends, the protocol, and for TCP the sequence and
/// acknowledgment numbers and flags, with the payload length. Two packets with one key (a retransmitted segment
/// with an unchanged ACK) are told apart by their order.
public struct KernelPacketKey: Sendable, Hashable, CustomStringConvertible {
    public var source: IPAddress
    public var destination: IPAddress
    /// The IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6.
    public var ipProtocol: UInt8
    /// 0 for protocols without ports.
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// 0 for UDP and others.
    public var seq: UInt32
    public var ack: UInt32
    /// The eight TCP flag bits (FIN = 0x01 ... CWR = 0x80); 0 for UDP and others.
    public var flags: UInt8
    /// The TCP or UDP payload length (for other protocols, the IP payload's).
    public var length: Int

    public init(
        source: IPAddress, destination: IPAddress, ipProtocol: UInt8, sourcePort: UInt16, destinationPort: UInt16,
        seq: UInt32, ack: UInt32, flags: UInt8, length: Int
    ) {
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.length = length
    }

    public var description: String {
        "\(IPAddress.describe(source, port: sourcePort)) > \(IPAddress.describe(destination, port: destinationPort)) "
            + "proto \(ipProtocol) seq \(seq) ack \(ack) flags 0x\(String(flags, radix: 16)) len \(length)"
    }
}

/// The task that was current when a packet was built (in a softirq: the task it interrupted, or ksoftirqd).
public struct KernelTask: Sendable, Hashable {
    /// Ids in the tracer's pid namespace (0 when the task is not visible from it).
    public var pid: Int32
    public var tid: Int32
    public var comm: String
    public var traced: Bool
}

/// One outgoing packet as the kernel queued it to a device (`net:net_dev_queue`), with what was running.
public struct KernelPacket: Sendable {
    public var time: Timestamp
    /// nil when the headers could not be read or are not IPv4/IPv6.
    public var key: KernelPacketKey?
    public var context: KernelPacketContext
    public var task: KernelTask
    /// skb->sk: the socket the packet belongs to (0: none, e.g. an RST for a closed port).
    public var socketPointer: UInt64
    /// That socket's inode when it is a full socket (nil for request and timewait socks).
    public var socketInode: UInt64?
    /// Its state number when the packet was built.
    public var socketState: UInt8
    public var ifindex: Int32
    /// The IPv4 identification field (0 for IPv6), the TCP window: not in the key, shown for checking.
    public var ipID: UInt16
    public var window: UInt16
    /// The packet's length from its link-layer header on (what a capture calls its wire length).
    public var length: Int
}

/// What the BPF program could not do, from its counters.
public struct KernelTraceCounters: Sendable, Equatable {
    /// Records lost because the ring buffer was full.
    public var lostCalls: UInt64 = 0
    public var lostPackets: UInt64 = 0
    public var lostTaskEvents: UInt64 = 0
    public var lostNotes: UInt64 = 0
    /// Packets whose headers could not be read (they are recorded without a key).
    public var unreadableHeaders: UInt64 = 0
    /// Arguments, data or source lines that could not be read from the program's memory.
    public var unreadableUserMemory: UInt64 = 0
    /// Records shorter than their layout (never expected: a mismatch between the program and this module).
    public var malformedRecords: UInt64 = 0

    public init() {}
}

/// Everything a run of the eBPF engine saw.
public struct KernelTraceRun: Sendable {
    /// The socket calls in the order they started (``KernelCall/number`` 1, 2, 3...).
    public var calls: [KernelCall]
    /// The packets of traced tasks, traced sockets and their endpoints, in the order they were queued.
    public var packets: [KernelPacket]
    /// Forks, execs and exits of traced tasks, in order.
    public var processEvents: [KernelProcessEvent]
    /// The launched command's exit status (128 + signal when killed); nil for an attached process.
    public var exitStatus: Int32?
    /// True when the engine attached to a running process (-p) or left processes running after Ctrl-C.
    public var detached: Bool
    public var counters: KernelTraceCounters
    /// What could not be done, one line each (records lost, threads not followed).
    public var warnings: [String]
}
