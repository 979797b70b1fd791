import Glibc
import PacketCapture
import PacketWire
import Sockets
import Timeline

/// How a lab run is set up: the seed's addresses by default.
public struct LabConfiguration: Sendable {
    public var server = SeedServer.defaultAddress
    public var clientIP: IPAddress = .v4(0x7f00_0001)
    /// Fixes the client's port (the seed's run got 61867); nil lets the kernel choose.
    public var clientPort: UInt16?
    public var message = "こんにちは、サーバーさん。Hello, server!"
    public var capture = true
    public var interface = "lo"
    /// After each step, wait until no packet has arrived for this long, so late kernel packets (a delayed ACK
    /// comes 40 ms later on Linux) land under the step that caused them.
    public var settle: Duration = .milliseconds(120)
    /// The longest wait after one step.
    public var settleLimit: Duration = .seconds(3)
    public var receiveBufferSize = 4096

    public init() {}

    /// The client's address as the lab binds it (port 0 = ephemeral).
    public var clientAddress: SocketAddress { SocketAddress(ip: clientIP, port: clientPort ?? 0) }

    /// Whether the client needs an explicit `bind` (the seed does not bind; the kernel picks 127.0.0.1).
    public var clientNeedsBind: Bool { clientPort != nil || clientIP != .v4(0x7f00_0001) }
}

/// What a lab run produced: the calls in order and the packets, each attributed to a call.
public struct LabResult: Sendable {
    public var scenario: String
    public var calls: [CallEvent]
    public var packets: [PacketEvent]
    /// The captured packets themselves, for writing a pcapng.
    public var captured: [CapturedPacket]
    public var linkType: LinkType?
    public var statistics: CaptureStatistics?
    public var serverAddress: String
    public var clientAddress: String?
}

/// Why a lab run stopped. One line, with what to do.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs calls one at a time, times them, reads the TCP state of the watched sockets after each, and waits for the
/// wire to be quiet before the next, so every packet falls under the call during which it was sent.
public final class LabSession {
    public let configuration: LabConfiguration
    private let capture: BackgroundCapture?
    public private(set) var calls: [CallEvent] = []
    private var nextID = 1

    /// A socket whose TCP state is shown after every step; kept by address once closed, so FIN_WAIT2 and
    /// TIME_WAIT still show (from /proc/net/tcp).
    struct Watched {
        var actor: String
        var socket: Socket?
        var local: SocketAddress?
        var remote: SocketAddress?
        var lastState = "CLOSED"
    }

    private var watched: [Watched] = []

    init(configuration: LabConfiguration, filter: String) throws(LabError) {
        self.configuration = configuration
        if configuration.capture {
            var options = LiveCapture.Options(interface: configuration.interface, filter: filter)
            options.bufferSize = 8 << 20
            do {
                capture = try BackgroundCapture(options)
            } catch {
                throw LabError(
                    error.kind == .permission
                        ? "\(error.message); or run `packetflow lab --no-capture` to see calls and states only"
                        : error.message)
            }
            // libpcap's socket is live once activated; a short settle avoids losing a first packet on busy hosts.
            capture?.waitUntilQuiet(idle: .milliseconds(20), limit: .milliseconds(200))
        } else {
            capture = nil
        }
    }

    /// Shows `socket`'s state after each step under the name `actor` ("server", "client").
    /// The step that made the socket (socket, accept) already ran, so its states are read again to include it.
    public func watch(_ actor: String, _ socket: Socket) {
        if let i = watched.firstIndex(where: { $0.actor == actor }) {
            watched[i].socket = socket
            watched[i].local = nil
            watched[i].remote = nil
        } else {
            watched.append(Watched(actor: actor, socket: socket))
        }
        if !calls.isEmpty { calls[calls.count - 1].tcpStates = readStates() }
    }

    /// Runs one call as a numbered step. `body` returns the call's result; an `Errno` it throws is recorded as
    /// the call's errno and handed back as `.failure`.
    @discardableResult
    public func step<T>(
        _ actor: String, _ name: String, _ args: [(String, ArgumentValue)] = [], note: String? = nil,
        result: (T) -> Int? = { _ in 0 }, local: SocketAddress? = nil, remote: SocketAddress? = nil,
        _ body: () throws(Errno) -> T
    ) -> Result<T, Errno> {
        let start = realtimeNow()
        let outcome: Result<T, Errno>
        do throws(Errno) {
            outcome = .success(try body())
        } catch {
            outcome = .failure(error)
        }
        let end = realtimeNow()
        if let capture {
            capture.waitUntilQuiet(idle: configuration.settle, limit: configuration.settleLimit)
        } else {
            // Without a capture the quiet wire cannot be seen; wait the same gap so the states read below are
            // the ones a captured run shows (a delayed ACK takes 40 ms on Linux).
            sleepFor(configuration.settle)
        }
        var call = CallEvent(
            id: nextID, actor: actor, name: name, args: args, result: nil, start: start, end: end,
            local: local?.description, remote: remote?.description)
        switch outcome {
        case .success(let value): call.result = result(value)
        case .failure(let e): call.errno = e.name
        }
        call.note = note
        call.tcpStates = readStates()
        // Name the actor's connection ends when the call did not (after connect, accept, ...).
        if let w = watched.first(where: { $0.actor == actor }) {
            if call.local == nil { call.local = w.local?.description }
            if call.remote == nil { call.remote = w.remote?.description }
        }
        calls.append(call)
        nextID += 1
        return outcome
    }

    /// Like `step`, but an error ends the run with a message naming the step.
    @discardableResult
    public func require<T>(
        _ actor: String, _ name: String, _ args: [(String, ArgumentValue)] = [], note: String? = nil,
        result: (T) -> Int? = { _ in 0 }, local: SocketAddress? = nil, remote: SocketAddress? = nil,
        hint: String? = nil, _ body: () throws(Errno) -> T
    ) throws(LabError) -> T {
        switch step(actor, name, args, note: note, result: result, local: local, remote: remote, body) {
        case .success(let v): return v
        case .failure(let e):
            let shown = args.map { $0.1.description }.joined(separator: ", ")
            throw LabError(
                "step \(nextID - 1) \(actor) \(name)(\(shown)) failed: \(e.name) (\(e.message))"
                    + (hint.map { "; \($0)" } ?? ""))
        }
    }

    func readStates() -> [(String, String)] {
        var states: [(String, String)] = []
        for i in watched.indices {
            var w = watched[i]
            if let s = w.socket, s.isOpen {
                // Remember the addresses while the descriptor is open, to find the connection after close.
                if let l = try? s.localAddress, l.port != 0 { w.local = l }
                if w.remote == nil, let r = try? s.remoteAddress { w.remote = r }
                w.lastState = s.tcpState()?.name ?? "CLOSED"
            } else if let l = w.local {
                w.lastState = KernelTCPTable.state(local: l, remote: w.remote)?.name ?? "CLOSED"
            } else {
                w.lastState = "CLOSED"
            }
            watched[i] = w
            states.append((w.actor, w.lastState))
        }
        return states
    }

    func finish(scenario: String, server: SocketAddress, client: SocketAddress?) throws(LabError) -> LabResult {
        var captured: [CapturedPacket] = []
        var stats: CaptureStatistics?
        let linkType = capture?.linkType
        if let capture {
            do {
                (captured, stats) = try capture.stop()
            } catch {
                throw LabError("capture failed: \(error.message)")
            }
        }
        var builder = PacketEventBuilder()
        var packets = captured.map { builder.event(for: $0) }
        let serverIP = server.ip
        let clientIP = client?.ip ?? configuration.clientIP
        let serverPort = server.port
        let attributor = Attributor { endpoint, address in
            // The server owns its listening port; the client is the other end. When both share one address
            // (::1), the port tells them apart.
            if let endpoint {
                if endpoint.address == serverIP && endpoint.port == serverPort { return "server" }
                if endpoint.address == clientIP { return "client" }
                if endpoint.address == serverIP { return "server" }
            }
            if let address {
                if address == serverIP && address != clientIP { return "server" }
                if address == clientIP && address != serverIP { return "client" }
            }
            return nil
        }
        attributor.attribute(&packets, calls: calls)
        return LabResult(
            scenario: scenario, calls: calls, packets: packets, captured: captured, linkType: linkType,
            statistics: stats, serverAddress: server.description, clientAddress: client?.description)
    }
}

func sleepFor(_ d: Duration) {
    var request = timespec(tv_sec: Int(d.components.seconds), tv_nsec: Int(d.components.attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// CLOCK_REALTIME, the clock capture timestamps use.
func realtimeNow() -> Timestamp {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
}

extension SocketAddress {
    var argument: ArgumentValue { .string(description) }
}
