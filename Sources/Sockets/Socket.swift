import Glibc
import PacketWire
import SystemCalls

/// An owned BSD socket descriptor (`socket(2)`) with typed calls on it.
///
/// Guarantees: the descriptor is close-on-exec from birth; ``close()`` is explicit and idempotent, and `deinit`
/// closes a socket still open; every failure is an ``Errno``; `send` never raises `SIGPIPE`.
///
/// A `Socket` is not `Sendable`: use it from one thread at a time. Hand one to another thread by `sending` it
/// (e.g. into a thread's closure) and not touching it afterwards.
public final class Socket {
    /// The address family (`AF_INET` / `AF_INET6`).
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6

        public var rawValue: Int32 {
            switch self {
            case .ipv4: AF_INET
            case .ipv6: AF_INET6
            }
        }
    }

    /// The socket type: a TCP byte stream or UDP datagrams.
    public enum Kind: Sendable, Hashable {
        /// `SOCK_STREAM` (TCP).
        case stream
        /// `SOCK_DGRAM` (UDP).
        case datagram

        var rawValue: Int32 {
            switch self {
            case .stream: Int32(SOCK_STREAM.rawValue)
            case .datagram: Int32(SOCK_DGRAM.rawValue)
            }
        }
    }

    /// Which half of a connection `shutdown(2)` closes.
    public enum ShutdownHow: Sendable, Hashable {
        /// `SHUT_RD`: no more receiving.
        case read
        /// `SHUT_WR`: no more sending; TCP sends a FIN.
        case write
        /// `SHUT_RDWR`.
        case both

        var rawValue: Int32 {
            switch self {
            case .read: Int32(SHUT_RD)
            case .write: Int32(SHUT_WR)
            case .both: Int32(SHUT_RDWR)
            }
        }
    }

    /// Flags for `recv(2)`.
    public struct ReceiveFlags: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `MSG_PEEK`: look at the data without taking it off the queue.
        public static let peek = ReceiveFlags(rawValue: Int32(MSG_PEEK))
        /// `MSG_DONTWAIT`: fail with `EAGAIN` instead of blocking, for this call only.
        public static let dontWait = ReceiveFlags(rawValue: Int32(MSG_DONTWAIT))
        /// `MSG_WAITALL`: block until the whole buffer is filled (or EOF / error).
        public static let waitAll = ReceiveFlags(rawValue: Int32(MSG_WAITALL))
    }

    /// The raw descriptor, or -1 once closed.
    public private(set) var fileDescriptor: Int32

    /// `socket(2)` with `SOCK_CLOEXEC`.
    public init(family: Family = .ipv4, type: Kind = .stream) throws(Errno) {
        let kind = type.rawValue | Int32(SOCK_CLOEXEC.rawValue)
        fileDescriptor = try syscall { Glibc.socket(family.rawValue, kind, 0) }
    }

    /// Takes ownership of an open socket descriptor: it will be closed by ``close()`` or `deinit`.
    public init(adopting fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    deinit {
        if fileDescriptor >= 0 {
            _ = try? syscall(retryOnInterrupt: false) { Glibc.close(fileDescriptor) }
        }
    }

    /// Whether ``close()`` has not been called yet.
    public var isOpen: Bool { fileDescriptor >= 0 }

    /// `close(2)`; a second call does nothing. Never retried on `EINTR`: Linux has released the descriptor
    /// whatever `close` reports, so the socket counts as closed even when this throws.
    public func close() throws(Errno) {
        guard fileDescriptor >= 0 else { return }
        let fd = fileDescriptor
        fileDescriptor = -1
        try syscall(retryOnInterrupt: false) { Glibc.close(fd) }
    }

    // MARK: Connection set-up

    /// `bind(2)`.
    public func bind(to address: SocketAddress) throws(Errno) {
        try address.withSockAddr { (pointer, length) throws(Errno) in
            _ = try syscall { Glibc.bind(fileDescriptor, pointer, length) }
        }
    }

    /// `listen(2)`.
    public func listen(backlog: Int32) throws(Errno) {
        try syscall { Glibc.listen(fileDescriptor, backlog) }
    }

    /// `accept4(2)` with `SOCK_CLOEXEC`: the connected socket and the peer's address.
    public func accept() throws(Errno) -> (Socket, SocketAddress) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(Errno) -> Int32 in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(Errno) -> Int32 in
                try syscall { Linux.accept4(fileDescriptor, address, &length, Int32(SOCK_CLOEXEC.rawValue)) }
            }
        }
        let socket = Socket(adopting: fd)
        guard let peer = SocketAddress(storage: storage) else { throw .addressFamilyNotSupported }
        return (socket, peer)
    }

    /// `connect(2)`. Without a timeout it waits as long as the kernel does (about two minutes of SYN retries for
    /// a silent host); with one it connects non-blocking and `poll(2)`s for the outcome.
    ///
    /// A refused connection throws ``Errno/connectionRefused`` (ECONNREFUSED), a timeout ``Errno/timedOut``
    /// (ETIMEDOUT). A socket already in non-blocking mode and given no timeout throws ``Errno/nowInProgress``
    /// (EINPROGRESS) as `connect(2)` does.
    public func connect(to address: SocketAddress, timeout: Duration? = nil) throws(Errno) {
        let wasNonBlocking = try isNonBlocking()
        if wasNonBlocking && timeout == nil {
            try address.withSockAddr { (pointer, length) throws(Errno) in
                _ = try syscall { Glibc.connect(fileDescriptor, pointer, length) }
            }
            return
        }
        if !wasNonBlocking { try setNonBlocking(true) }
        defer { if !wasNonBlocking { try? setNonBlocking(false) } }
        do {
            // An interrupted connect(2) goes on in the kernel; calling it again would report EALREADY, so EINTR
            // is handled like EINPROGRESS: wait for the outcome.
            try address.withSockAddr { (pointer, length) throws(Errno) in
                _ = try syscall(retryOnInterrupt: false) { Glibc.connect(fileDescriptor, pointer, length) }
            }
            return
        } catch  where error == .nowInProgress || error == .interrupted {
            // Handshake under way.
        }
        let events = try poll(.writable, timeout: timeout)
        if events.isEmpty { throw .timedOut }
        if let failure = try pendingError() { throw failure }
    }

    // MARK: Data

    /// `send(2)` with `MSG_NOSIGNAL`: the number of bytes the kernel took, maybe fewer than given.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws(Errno) -> Int {
        try syscall {
            bytes.withUnsafeBytes { Glibc.send(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// Sends every byte, calling `send(2)` as often as needed (like Python's `sendall`).
    public func sendAll(_ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let rest = bytes[offset...]
            offset += try syscall {
                rest.withUnsafeBytes { Glibc.send(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// `recv(2)` of at most `max` bytes. An empty result means the peer closed its sending half (EOF).
    public func recv(max: Int, flags: ReceiveFlags = []) throws(Errno) -> [UInt8] {
        precondition(max > 0, "recv(max:) needs room for at least one byte")
        var buffer = [UInt8](repeating: 0, count: max)
        let count = try syscall {
            buffer.withUnsafeMutableBytes { Glibc.recv(fileDescriptor, $0.baseAddress, $0.count, flags.rawValue) }
        }
        buffer.removeSubrange(count...)
        return buffer
    }

    /// `sendto(2)` with `MSG_NOSIGNAL`, for datagram sockets.
    @discardableResult
    public func sendTo(_ bytes: [UInt8], to address: SocketAddress) throws(Errno) -> Int {
        try address.withSockAddr { (pointer, length) throws(Errno) -> Int in
            try syscall {
                bytes.withUnsafeBytes {
                    Glibc.sendto(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), pointer, length)
                }
            }
        }
    }

    /// `recvfrom(2)`: one datagram (cut to `max` bytes) and who sent it.
    public func recvFrom(max: Int, flags: ReceiveFlags = []) throws(Errno) -> ([UInt8], SocketAddress) {
        precondition(max > 0, "recvFrom(max:) needs room for at least one byte")
        var buffer = [UInt8](repeating: 0, count: max)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(Errno) -> Int in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(Errno) -> Int in
                try syscall {
                    buffer.withUnsafeMutableBytes {
                        Glibc.recvfrom(fileDescriptor, $0.baseAddress, $0.count, flags.rawValue, address, &length)
                    }
                }
            }
        }
        buffer.removeSubrange(count...)
        guard let sender = SocketAddress(storage: storage) else { throw .addressFamilyNotSupported }
        return (buffer, sender)
    }

    /// `shutdown(2)`.
    public func shutdown(_ how: ShutdownHow) throws(Errno) {
        try syscall { Glibc.shutdown(fileDescriptor, how.rawValue) }
    }

    /// `poll(2)` on this socket alone: the events that happened, empty when `timeout` passed first.
    public func poll(_ events: PollEvents, timeout: Duration?) throws(Errno) -> PollEvents {
        try Poll.wait([Poll.Request(fileDescriptor: fileDescriptor, events: events)], timeout: timeout)[0]
    }

    // MARK: Addresses and state

    /// `getsockname(2)`: the address this socket is bound to (the kernel's choice after binding port 0).
    public var localAddress: SocketAddress {
        get throws(Errno) {
            try address { (fd, pointer, length) in Glibc.getsockname(fd, pointer, length) }
        }
    }

    /// `getpeername(2)`: the connected peer; `ENOTCONN` when there is none.
    public var remoteAddress: SocketAddress {
        get throws(Errno) {
            try address { (fd, pointer, length) in Glibc.getpeername(fd, pointer, length) }
        }
    }

    private func address(
        _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws(Errno) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutablePointer(to: &storage) { (pointer) throws(Errno) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(Errno) in
                _ = try syscall { call(fileDescriptor, address, &length) }
            }
        }
        guard let decoded = SocketAddress(storage: storage) else { throw .addressFamilyNotSupported }
        return decoded
    }

    /// The kernel's TCP state for this socket (`getsockopt(TCP_INFO)`), or nil when it is not a TCP socket or is
    /// closed.
    ///
    /// Glibc imports `struct tcp_info`, but its copy is older and shorter than the running kernel's. That is
    /// fine: the kernel copies `min(our length, its length)` bytes, and `tcpi_state` is the first byte in every
    /// version since Linux 2.4, so the field we read is always filled.
    public func tcpState() -> TCPState? { Self.tcpState(ofDescriptor: fileDescriptor) }

    /// ``tcpState()`` of any descriptor this process holds (a tracer's duplicate of a traced program's socket).
    public static func tcpState(ofDescriptor fd: Int32) -> TCPState? {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        let result = try? syscall { Glibc.getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) }
        guard result != nil, length >= 1 else { return nil }
        return TCPState(rawValue: info.tcpi_state)
    }

    /// `getsockopt(SO_ERROR)`: the error a non-blocking operation ended with, clearing it; nil if none.
    public func pendingError() throws(Errno) -> Errno? {
        let value: Int32 = try option(SOL_SOCKET, SO_ERROR, 0)
        return value == 0 ? nil : Errno(rawValue: value)
    }

    // MARK: Options

    /// `SO_REUSEADDR`: allow binding a port that still has connections in TIME_WAIT (server restarts).
    public func setReuseAddress(_ enabled: Bool = true) throws(Errno) {
        try setOption(SOL_SOCKET, SO_REUSEADDR, Int32(enabled ? 1 : 0))
    }

    /// `SO_LINGER`. `nil` restores the default (close returns at once, the kernel sends what is queued, then FIN).
    /// A number of seconds makes close wait that long for queued data; `0` makes close abortive: queued data is
    /// dropped and the peer gets a RST instead of a FIN.
    public func setLinger(seconds: Int?) throws(Errno) {
        let value = linger(l_onoff: seconds == nil ? 0 : 1, l_linger: Int32(clamping: seconds ?? 0))
        try setOption(SOL_SOCKET, SO_LINGER, value)
    }

    /// `TCP_NODELAY`: send small segments at once instead of waiting to coalesce them (Nagle's algorithm off).
    public func setNoDelay(_ enabled: Bool = true) throws(Errno) {
        try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, Int32(enabled ? 1 : 0))
    }

    /// `TCP_MAXSEG`: the largest segment this side announces and sends, set before `connect(2)`.
    public func setMaxSegmentSize(_ bytes: Int) throws(Errno) {
        try setOption(Int32(IPPROTO_TCP), TCP_MAXSEG, Int32(clamping: bytes))
    }

    /// `TCP_QUICKACK`: `false` puts the receiver in delayed-ACK mode (ACKs wait up to
    /// 40 ms for data to ride on), as after an interactive exchange; the kernel may leave that mode again by itself.
    public func setQuickAck(_ enabled: Bool) throws(Errno) {
        try setOption(Int32(IPPROTO_TCP), TCP_QUICKACK, Int32(enabled ? 1 : 0))
    }

    /// `SO_KEEPALIVE`, and when given `TCP_KEEPIDLE` (seconds of silence before the first probe),
    /// `TCP_KEEPINTVL` (seconds between probes) and `TCP_KEEPCNT` (unanswered probes before the connection is
    /// dropped with ETIMEDOUT).
    public func setKeepAlive(
        _ enabled: Bool = true,
        idle: Int? = nil,
        interval: Int? = nil,
        count: Int? = nil
    ) throws(Errno) {
        try setOption(SOL_SOCKET, SO_KEEPALIVE, Int32(enabled ? 1 : 0))
        if let idle { try setOption(Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(clamping: idle)) }
        if let interval { try setOption(Int32(IPPROTO_TCP), TCP_KEEPINTVL, Int32(clamping: interval)) }
        if let count { try setOption(Int32(IPPROTO_TCP), TCP_KEEPCNT, Int32(clamping: count)) }
    }

    /// `SO_RCVTIMEO`: a blocking receive (or accept) fails with ``Errno/wouldBlock`` (EAGAIN) after `timeout`;
    /// `nil` waits for ever.
    public func setReceiveTimeout(_ timeout: Duration?) throws(Errno) {
        try setOption(SOL_SOCKET, SO_RCVTIMEO, Self.timeval(timeout))
    }

    /// `SO_SNDTIMEO`: a blocking send fails with ``Errno/wouldBlock`` (EAGAIN) after `timeout` (or returns the
    /// part it sent); `nil` waits for ever.
    public func setSendTimeout(_ timeout: Duration?) throws(Errno) {
        try setOption(SOL_SOCKET, SO_SNDTIMEO, Self.timeval(timeout))
    }

    /// Sets or clears `O_NONBLOCK` (`fcntl(2)`).
    public func setNonBlocking(_ enabled: Bool) throws(Errno) {
        let flags = try syscall { Glibc.fcntl(fileDescriptor, F_GETFL) }
        let updated = enabled ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if updated != flags {
            try syscall { Glibc.fcntl(fileDescriptor, F_SETFL, updated) }
        }
    }

    /// Whether `O_NONBLOCK` is set.
    public func isNonBlocking() throws(Errno) -> Bool {
        let flags = try syscall { Glibc.fcntl(fileDescriptor, F_GETFL) }
        return flags & O_NONBLOCK != 0
    }

    private static func timeval(_ duration: Duration?) -> Glibc.timeval {
        // A zero timeval means "no timeout" to the kernel, so a tiny positive duration is rounded up to 1 µs.
        guard let duration, duration > .zero else { return Glibc.timeval(tv_sec: 0, tv_usec: 0) }
        let (seconds, attoseconds) = duration.components
        let micros = max(seconds == 0 ? 1 : 0, attoseconds / 1_000_000_000_000)
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(micros))
    }

    private func setOption<Value: BitwiseCopyable>(_ level: Int32, _ name: Int32, _ value: Value) throws(Errno) {
        var value = value
        let size = socklen_t(MemoryLayout<Value>.size)
        try syscall { Glibc.setsockopt(fileDescriptor, level, name, &value, size) }
    }

    private func option<Value: BitwiseCopyable>(_ level: Int32, _ name: Int32, _ initial: Value) throws(Errno) -> Value
    {
        var value = initial
        var size = socklen_t(MemoryLayout<Value>.size)
        try syscall { Glibc.getsockopt(fileDescriptor, level, name, &value, &size) }
        return value
    }
}
