import Sockets
import SystemCalls

/// The seed blog's TCP client as a library type: `socket`, `connect` to 127.0.0.2:49152, `sendall` the message
/// as UTF-8, one `recv(4096)`, `close`.
///
/// Additions to the seed: an optional local address to `bind` first (the seed's capture shows its client on
/// 127.0.0.1:61867; binding makes a run reproduce that port), a connect timeout, a receive timeout, and errors
/// that say in one line what went wrong and where.
public struct SeedClient: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The server to connect to; the seed's `HOST, D_PORT_NO`.
        public var server: SocketAddress
        /// The local address to bind before connecting, e.g. 127.0.0.1:61867; nil lets the kernel choose.
        public var bindAddress: SocketAddress?
        /// How long to wait for the handshake; nil waits as long as the kernel does.
        public var connectTimeout: Duration?
        /// How long to wait for the reply; nil waits for ever (as the seed does).
        public var receiveTimeout: Duration?
        /// The size of the one `recv(2)`; the seed's `BUFSIZE = 4096`.
        public var receiveBufferSize: Int

        public init(
            server: SocketAddress = SeedServer.defaultAddress,
            bindAddress: SocketAddress? = nil,
            connectTimeout: Duration? = .seconds(5),
            receiveTimeout: Duration? = .seconds(10),
            receiveBufferSize: Int = 4096
        ) {
            precondition(receiveBufferSize > 0, "the receive buffer must hold at least one byte")
            self.server = server
            self.bindAddress = bindAddress
            self.connectTimeout = connectTimeout
            self.receiveTimeout = receiveTimeout
            self.receiveBufferSize = receiveBufferSize
        }
    }

    /// What came back from one exchange.
    public struct Reply: Sendable, Hashable {
        /// The bytes the one `recv(2)` returned; empty if the server closed without answering.
        public let bytes: [UInt8]
        /// The local address the connection used (the kernel's ephemeral port unless one was bound).
        public let localAddress: SocketAddress

        /// ``bytes`` decoded as UTF-8, invalid sequences replaced with U+FFFD.
        public var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// One exchange, as the seed does it: connect, send `message` as UTF-8, receive the reply, close.
    public func send(_ message: String) throws(SeedClientError) -> Reply {
        try send(bytes: Array(message.utf8))
    }

    /// One exchange with raw bytes (for messages that are not text).
    public func send(bytes message: [UInt8]) throws(SeedClientError) -> Reply {
        let server = configuration.server
        let socket: Socket
        do {
            socket = try Socket(family: server.ip.isIPv4 ? .ipv4 : .ipv6, type: .stream)
        } catch {
            throw .socketFailed(error)
        }
        defer { try? socket.close() }

        if let bindAddress = configuration.bindAddress {
            do {
                // A fixed port is often still in TIME_WAIT from the previous run; SO_REUSEADDR lets us bind it.
                try socket.setReuseAddress()
                try socket.bind(to: bindAddress)
            } catch {
                throw .cannotBind(bindAddress, error)
            }
        }
        do {
            try socket.connect(to: server, timeout: configuration.connectTimeout)
        } catch  where error == .connectionRefused {
            throw .connectionRefused(server)
        } catch  where error == .timedOut {
            throw .connectTimedOut(server, configuration.connectTimeout)
        } catch {
            throw .connectFailed(server, error)
        }
        let local = (try? socket.localAddress) ?? server
        do {
            try socket.sendAll(message)
        } catch {
            throw .sendFailed(server, error)
        }
        do {
            try socket.setReceiveTimeout(configuration.receiveTimeout)
            let reply = try socket.recv(max: configuration.receiveBufferSize)
            return Reply(bytes: reply, localAddress: local)
        } catch  where error == .wouldBlock {
            throw .receiveTimedOut(server, configuration.receiveTimeout)
        } catch {
            throw .receiveFailed(server, error)
        }
    }
}

/// Why a seed client exchange failed; prints as one line for the command line.
public enum SeedClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered the SYN with a RST: nothing listens there (ECONNREFUSED).
    case connectionRefused(SocketAddress)
    /// No answer to the SYN within the timeout (ETIMEDOUT).
    case connectTimedOut(SocketAddress, Duration?)
    /// `connect(2)` failed otherwise (e.g. ENETUNREACH, EADDRNOTAVAIL).
    case connectFailed(SocketAddress, Errno)
    /// `bind(2)` of the requested local address failed (e.g. EADDRINUSE).
    case cannotBind(SocketAddress, Errno)
    /// `socket(2)` failed (e.g. EMFILE).
    case socketFailed(Errno)
    /// Sending the message failed (e.g. EPIPE, ECONNRESET).
    case sendFailed(SocketAddress, Errno)
    /// No reply within the receive timeout.
    case receiveTimedOut(SocketAddress, Duration?)
    /// Receiving the reply failed (e.g. ECONNRESET).
    case receiveFailed(SocketAddress, Errno)

    /// The underlying `errno`, when there is one.
    public var errno: Errno? {
        switch self {
        case .connectionRefused: .connectionRefused
        case .connectTimedOut, .receiveTimedOut: .timedOut
        case .connectFailed(_, let error), .cannotBind(_, let error), .socketFailed(let error),
            .sendFailed(_, let error), .receiveFailed(_, let error):
            error
        }
    }

    public var description: String {
        switch self {
        case .connectionRefused(let server):
            "connection refused by \(server) — is `packetflow server` running?"
        case .connectTimedOut(let server, let timeout):
            "no answer from \(server)\(timeout.map { " within \($0)" } ?? "") (ETIMEDOUT) — is the address right?"
        case .connectFailed(let server, let error):
            "cannot connect to \(server): \(error)"
        case .cannotBind(let address, let error):
            "cannot bind the client to \(address): \(error)"
        case .socketFailed(let error):
            "cannot create a socket: \(error)"
        case .sendFailed(let server, let error):
            "sending to \(server) failed: \(error)"
        case .receiveTimedOut(let server, let timeout):
            "no reply from \(server)\(timeout.map { " within \($0)" } ?? "")"
        case .receiveFailed(let server, let error):
            "receiving from \(server) failed: \(error)"
        }
    }
}
