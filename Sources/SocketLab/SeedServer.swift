import Sockets
import Synchronization
import SystemCalls

/// The seed blog's TCP server as a library type: listen on 127.0.0.2:49152 with a backlog of 2, accept clients
/// for ever, count them (`access_cnt`), read one message with a single `recv(4096)`, answer with a reply that
/// carries the count, and close.
///
/// Differences from the seed, each so the lab stays usable:
/// - Clients are served from one `poll(2)` loop, each with a deadline, so a silent or slow client cannot stall
///   the next one (the seed blocks in `recv` until its client speaks).
/// - Every client produces exactly one log line, through the `log` closure, with the message shown safely:
///   valid UTF-8 as is, control characters and invalid bytes escaped (`\n`, `\x00`), long messages cut with a
///   note.
/// - The listener has `SO_REUSEADDR`, so a restart does not fail on connections still in TIME_WAIT.
/// - ``stop()`` ends ``run()`` cleanly from any thread; a signal handler writes a byte to ``stopDescriptor``.
///
/// `SeedServer` is `Sendable`: ``run()`` runs on one thread while others call ``stop()`` or read
/// ``accessCount``.
public final class SeedServer: Sendable {
    /// How the server listens and how patient it is with clients.
    public struct Configuration: Sendable, Hashable {
        /// Where to listen; the seed uses 127.0.0.2:49152. Port 0 lets the kernel choose (see ``address``).
        public var address: SocketAddress
        /// `listen(2)` backlog; the seed's `server.listen(2)`.
        public var backlog: Int32
        /// The size of the one `recv(2)` per client; the seed's `recv(4096)`.
        public var receiveBufferSize: Int
        /// How long a client may take to send its message before it is closed without a reply.
        public var clientTimeout: Duration
        /// How many bytes of a message are shown in the log line and echoed in the reply.
        public var maxMessageSize: Int

        public init(
            address: SocketAddress = SeedServer.defaultAddress,
            backlog: Int32 = 2,
            receiveBufferSize: Int = 4096,
            clientTimeout: Duration = .seconds(5),
            maxMessageSize: Int = 256
        ) {
            precondition(receiveBufferSize > 0 && maxMessageSize > 0, "buffer and message sizes must be positive")
            self.address = address
            self.backlog = backlog
            self.receiveBufferSize = receiveBufferSize
            self.clientTimeout = clientTimeout
            self.maxMessageSize = maxMessageSize
        }
    }

    /// The seed's server address, 127.0.0.2:49152 (the first dynamic port).
    public static let defaultAddress = SocketAddress(ip: .v4(0x7F00_0002), port: 49152)

    /// How one client's visit ended.
    public enum Outcome: Sendable, Hashable {
        /// The message was read and this reply was sent.
        case replied(String)
        /// The client closed its side before sending a byte.
        case closedWithoutMessage
        /// Nothing arrived within ``Configuration/clientTimeout``; closed without a reply.
        case timedOut(Duration)
        /// `recv(2)` or `send(2)` failed, e.g. ECONNRESET when the client aborted.
        case failed(Errno)
        /// ``stop()`` was called while the client was still waiting to be read.
        case serverStopped
    }

    /// One client's visit: what the seed prints, plus what a learner needs to see.
    public struct Access: Sendable, Hashable, CustomStringConvertible {
        /// The access count after this client was accepted (the seed's `access_cnt`), from 1.
        public let count: Int
        /// The client's address as `accept(2)` reported it.
        public let peer: SocketAddress
        /// The bytes the one `recv(2)` returned (empty if none).
        public let message: [UInt8]
        /// Bytes still unread in the receive queue when the server closed. Closing a socket with unread data makes
        /// Linux send a RST instead of a FIN.
        public let unreadBytes: Int
        public let outcome: Outcome
        /// ``message`` as shown in the log: escaped and bounded by ``Configuration/maxMessageSize``.
        public let shownMessage: String

        public var description: String {
            var line = "#\(count) \(peer): "
            switch outcome {
            case .replied:
                line += "received \(message.count) bytes: \(shownMessage); replied"
            case .closedWithoutMessage:
                line += "closed the connection without sending anything"
            case .timedOut(let timeout):
                line += "sent nothing within \(timeout); closed without a reply"
            case .failed(let error):
                line +=
                    message.isEmpty
                    ? "failed: \(error)"
                    : "received \(message.count) bytes: \(shownMessage); then failed: \(error)"
            case .serverStopped:
                line += "still waiting when the server stopped; closed without a reply"
            }
            if unreadBytes > 0 {
                line +=
                    " (\(unreadBytes)+ more bytes left unread beyond the \(message.count)-byte recv"
                    + ": closing with unread data sends a RST)"
            }
            return line
        }
    }

    public let configuration: Configuration
    /// The address actually listened on (the kernel's port when the configuration asked for port 0).
    public let address: SocketAddress

    private let log: @Sendable (Access) -> Void
    private let wakePipe: WakePipe
    private let state: Mutex<State>

    private struct State: ~Copyable {
        /// Held here until ``run()`` takes it; nil while running and after.
        var listener: Socket?
        var accessCount = 0
    }

    /// Creates the listening socket (`socket`, `setsockopt(SO_REUSEADDR)`, `bind`, `listen`). Once this returns,
    /// clients can connect; they are accepted when ``run()`` is called.
    public init(
        configuration: Configuration = Configuration(),
        log: @escaping @Sendable (Access) -> Void = { print($0) }
    ) throws(SeedServerError) {
        let listener: Socket
        let address: SocketAddress
        do {
            listener = try Socket(family: configuration.address.ip.isIPv4 ? .ipv4 : .ipv6, type: .stream)
            try listener.setReuseAddress()
            try listener.bind(to: configuration.address)
            try listener.listen(backlog: configuration.backlog)
            // accept(2) must not block when a client reset between poll and accept.
            try listener.setNonBlocking(true)
            address = try listener.localAddress
        } catch {
            throw .cannotListen(configuration.address, error)
        }
        do {
            wakePipe = try WakePipe()
        } catch {
            throw .internalFailure(error)
        }
        self.configuration = configuration
        self.address = address
        self.log = log
        self.state = Mutex(State(listener: listener))
    }

    /// How many clients have been accepted so far.
    public var accessCount: Int {
        state.withLock { $0.accessCount }
    }

    /// Makes ``run()`` return (at once if it is waiting, else at its next turn). Safe to call from any thread, more
    /// than once, and before `run()`: it only `write(2)`s one byte to a pipe. From a signal handler, write that
    /// byte to ``stopDescriptor`` instead.
    public func stop() {
        wakePipe.wake()
    }

    /// Writing one byte to this descriptor has the effect of ``stop()``. For a signal handler: it can call
    /// `write(2)` with a plain integer kept aside, where calling ``stop()`` would touch this object (a retain or
    /// release from a handler may deadlock). Valid while the server exists.
    public var stopDescriptor: Int32 { wakePipe.writeDescriptor }

    /// Accepts and serves clients until ``stop()``; closes the listener when it returns. Can run only once.
    public func run() throws(SeedServerError) {
        let taken: Socket? = state.withLock { state in
            let listener = state.listener
            state.listener = nil
            return listener
        }
        guard let listener = taken else { throw .alreadyRan }
        defer { try? listener.close() }

        var clients: [Client] = []
        defer {
            for client in clients { finish(client, outcome: .serverStopped) }
        }
        while true {
            let nearest = clients.map(\.deadline).min()
            let timeout = nearest.map { max(.zero, ContinuousClock.now.duration(to: $0)) }
            let requests =
                [
                    Poll.Request(fileDescriptor: wakePipe.readDescriptor, events: .readable),
                    Poll.Request(fileDescriptor: listener.fileDescriptor, events: .readable),
                ] + clients.map { Poll.Request(fileDescriptor: $0.socket.fileDescriptor, events: .readable) }
            let events: [PollEvents]
            do {
                events = try Poll.wait(requests, timeout: timeout)
            } catch {
                throw .internalFailure(error)
            }
            if !events[0].isEmpty {
                wakePipe.drain()
                return
            }

            let now = ContinuousClock.now
            var waiting: [Client] = []
            for (index, client) in clients.enumerated() {
                if !events[index + 2].isEmpty {
                    serve(client)
                } else if now >= client.deadline {
                    finish(client, outcome: .timedOut(configuration.clientTimeout))
                } else {
                    waiting.append(client)
                }
            }
            clients = waiting

            if !events[1].isEmpty {
                try acceptAll(from: listener, into: &clients)
            }
        }
    }

    // MARK: Serving

    private struct Client {
        let socket: Socket
        let peer: SocketAddress
        let count: Int
        let deadline: ContinuousClock.Instant
    }

    private func acceptAll(from listener: Socket, into clients: inout [Client]) throws(SeedServerError) {
        while true {
            let socket: Socket
            let peer: SocketAddress
            do {
                (socket, peer) = try listener.accept()
            } catch  where error == .wouldBlock {
                return
            } catch  where error == .connectionAborted || error == .interrupted {
                continue
            } catch {
                throw .internalFailure(error)
            }
            let count = state.withLock { state in
                state.accessCount += 1
                return state.accessCount
            }
            clients.append(
                Client(
                    socket: socket,
                    peer: peer,
                    count: count,
                    deadline: .now + configuration.clientTimeout
                )
            )
        }
    }

    /// The seed's `recv(4096)`, reply, `close()`, for a client whose message (or EOF) has arrived.
    private func serve(_ client: Client) {
        let message: [UInt8]
        do {
            message = try client.socket.recv(max: configuration.receiveBufferSize)
        } catch {
            finish(client, outcome: .failed(error))
            return
        }
        if message.isEmpty {
            finish(client, outcome: .closedWithoutMessage)
            return
        }
        let shown = SeedServer.displayText(message, limit: configuration.maxMessageSize)
        let reply = SeedServer.reply(count: client.count, byteCount: message.count, shownMessage: shown)
        do {
            try client.socket.setSendTimeout(configuration.clientTimeout)
            try client.socket.sendAll(Array(reply.utf8))
        } catch {
            finish(client, message: message, outcome: .failed(error))
            return
        }
        finish(client, message: message, outcome: .replied(reply))
    }

    private func finish(_ client: Client, message: [UInt8] = [], outcome: Outcome) {
        // Peek (without taking) at what is still queued: it decides whether close sends a FIN or a RST.
        let unread = (try? client.socket.recv(max: 65536, flags: [.peek, .dontWait]).count) ?? 0
        try? client.socket.close()
        log(
            Access(
                count: client.count,
                peer: client.peer,
                message: message,
                unreadBytes: unread,
                outcome: outcome,
                shownMessage: SeedServer.displayText(message, limit: configuration.maxMessageSize)
            )
        )
    }

    /// The reply the server sends: the access count, how many bytes arrived, and the message as shown in the log.
    public static func reply(count: Int, byteCount: Int, shownMessage: String) -> String {
        "Hello, client #\(count)! Received \(byteCount) bytes: \(shownMessage)"
    }

    /// `bytes` as a quoted, printable, bounded string: valid UTF-8 as is; `\`, `"`, and control characters
    /// escaped (`\n`, `\t`, `\r`, `\x00`, `\u{85}`); bytes that are not UTF-8 as `\xNN`. At most `limit` bytes of
    /// input are shown (never cutting a character in half); the rest is replaced by a note with its size.
    public static func displayText(_ bytes: [UInt8], limit: Int) -> String {
        var text = "\""
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var consumed = 0
        parsing: while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                if consumed + encoded.count > limit { break parsing }
                consumed += encoded.count
                text += escaped(Unicode.UTF8.decode(encoded))
            case .error(let length):
                if consumed + length > limit { break parsing }
                for byte in bytes[consumed..<consumed + length] {
                    text += "\\x" + hex(byte)
                }
                consumed += length
            case .emptyInput:
                break parsing
            }
        }
        text += "\""
        if consumed < bytes.count {
            text += " … (\(bytes.count - consumed) more bytes not shown)"
        }
        return text
    }

    private static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\\": return "\\\\"
        case "\"": return "\\\""
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                return "\\x" + hex(UInt8(scalar.value))
            }
            if (0x80...0x9F).contains(scalar.value) {
                return "\\u{" + String(scalar.value, radix: 16) + "}"
            }
            return String(scalar)
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}

/// Why the seed server could not start or keep running; prints as one line for the command line.
public enum SeedServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `socket`, `bind` or `listen` failed, e.g. EADDRINUSE when another server has the port.
    case cannotListen(SocketAddress, Errno)
    /// ``SeedServer/run()`` was called a second time.
    case alreadyRan
    /// `poll(2)`, `accept(2)` or `pipe(2)` failed in a way the server cannot work around (e.g. EMFILE).
    case internalFailure(Errno)

    public var description: String {
        switch self {
        case .cannotListen(let address, let error) where error == .addressInUse:
            "cannot listen on \(address): \(error.name) — is another server already running there?"
        case .cannotListen(let address, let error) where error == .addressNotAvailable:
            "cannot listen on \(address): \(error.name) — that address is not on any interface"
        case .cannotListen(let address, let error):
            "cannot listen on \(address): \(error)"
        case .alreadyRan:
            "the server has already run; create a new SeedServer to run again"
        case .internalFailure(let error):
            "server failed: \(error)"
        }
    }
}
