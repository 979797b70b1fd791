import Glibc
import PacketCapture
import PacketWire
import Sockets
import SystemCalls
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
    /// The language of the notes the lab writes into calls ("en" or "ja").
    public var language: LabLanguage = .en
    /// Where the two sides run: both on loopback, or each in its own network namespace joined by a veth pair.
    public var hosts: LabHosts = .loopback

    public init() {}

    /// The port no scenario listens on (the server's port + 1): where `refused` and `udp` knock.
    public var closedPort: UInt16 { server.port == .max ? server.port - 1 : server.port + 1 }

    /// The client's address as the lab binds it (port 0 = ephemeral).
    public var clientAddress: SocketAddress { SocketAddress(ip: clientIP, port: clientPort ?? 0) }

    /// Whether the client needs an explicit `bind` (the seed does not bind; the kernel picks 127.0.0.1).
    public var clientNeedsBind: Bool { clientPort != nil || clientIP != .v4(0x7f00_0001) }

    /// Whether the run can move to a namespace of its own with only `lo`: both addresses are loopback ones
    /// (127.0.0.0/8, ::1) and the capture is on `lo` (or `any`).
    var fitsPrivateLoopback: Bool {
        func loopback(_ ip: IPAddress) -> Bool {
            switch ip {
            case .v4(let a): a >> 24 == 127
            case .v6(let high, let low): high == 0 && low == 1
            }
        }
        return loopback(server.ip) && loopback(clientIP) && (interface == "lo" || interface == "any")
    }
}

/// The language of lab notes. SocketLab does not depend on Render, so it has its own two-case enum.
public enum LabLanguage: String, Sendable { case en, ja }

/// Where the lab's two sides run.
public enum LabHosts: String, Sendable, CaseIterable {
    /// Both sides on a loopback interface: in a network namespace of the lab's own when the kernel allows one
    /// (root) and the addresses are loopback ones, else on this host's.
    case loopback
    /// Both sides on this host's own loopback, shared with every other program (to watch with tcpdump on lo).
    case host
    /// Client and server in two network namespaces the lab creates, joined by a veth pair.
    case netns
}

/// Where the lab's sockets live, which decides what can collide with them and what to advise when a bind fails.
public enum LabPlacement: Sendable, Equatable {
    /// A network namespace of the lab's own with only `lo`: nothing else on the host can hold its ports or reach its
    /// capture.
    case privateLoopback
    /// This host's loopback, because `--hosts host` asked for it.
    case hostByChoice
    /// This host's loopback, because the lab runs without root, and a namespace needs CAP_SYS_ADMIN.
    case hostWithoutPrivilege
    /// This host's loopback, because the kernel refused a namespace to root (a container's seccomp or missing
    /// CAP_SYS_ADMIN): `unshare(2)`'s errno.
    case hostRefused(Errno)
    /// This host's network, because the addresses or the interface are not the loopback ones.
    case hostAddresses
    /// Two namespaces joined by a veth pair (`--hosts netns`).
    case twoHosts
}

/// A note shown to users, in every language the lab speaks. Both texts are required so none is forgotten.
public struct LabText: Sendable, Equatable {
    public var en: String
    public var ja: String
    public init(_ en: String, ja: String) {
        self.en = en
        self.ja = ja
    }
    public func text(_ language: LabLanguage) -> String { language == .ja ? ja : en }
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
    /// Where the sockets lived: a namespace of the lab's own, this host, or two namespaces.
    public var placement: LabPlacement = .hostAddresses
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
    let capture: BackgroundCapture?
    public private(set) var calls: [CallEvent] = []
    private var nextID = 1

    /// A socket whose TCP state is shown after every step; kept by address once closed, so FIN_WAIT2 and
    /// TIME_WAIT still show (from /proc/net/tcp).
    struct Watched {
        var actor: String
        var socket: Socket?
        var local: SocketAddress?
        var remote: SocketAddress?
        var lastState = TCPState.closed
    }

    private var watched: [Watched] = []
    /// Every socket named to the lab (watched or not) and the actor owning it, to tell apart several clients on
    /// one address by their ports when attributing packets.
    private var named: [(actor: String, socket: Socket)] = []
    private var actorByEndpoint: [Endpoint: String] = [:]
    /// Set in `--hosts netns` and in the loopback lab's own namespace: each step's body runs inside its actor's
    /// namespace.
    let namespaces: (any LabNetwork)?
    /// Where the sockets live, for the advice when a bind fails.
    let placement: LabPlacement

    init(
        configuration: LabConfiguration, filter: String, namespaces: (any LabNetwork)? = nil,
        placement: LabPlacement = .hostAddresses
    ) throws(LabError) {
        self.configuration = configuration
        self.namespaces = namespaces
        self.placement = placement
        if configuration.capture {
            var options = LiveCapture.Options(interface: configuration.interface, filter: filter)
            options.bufferSize = 8 << 20
            do {
                // In netns mode libpcap's packet socket must be opened inside the server's namespace, where the
                // veth end lives; it stays bound to that namespace after the thread switches back.
                let made: Result<BackgroundCapture, CaptureError> = LabNamespaces.within(namespaces, actor: "server") {
                    do throws(CaptureError) { return .success(try BackgroundCapture(options)) } catch {
                        return .failure(error)
                    }
                }
                capture = try made.get()
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
        name(actor, socket)
        if let i = watched.firstIndex(where: { $0.actor == actor }) {
            watched[i].socket = socket
            watched[i].local = nil
            watched[i].remote = nil
        } else {
            watched.append(Watched(actor: actor, socket: socket))
        }
        if !calls.isEmpty { calls[calls.count - 1].tcpStates = readStates() }
    }

    /// Tells the lab that `socket` belongs to `actor` without showing its state (extra clients, the accepted
    /// connections of `backlog`), so its packets are drawn from the right actor.
    public func name(_ actor: String, _ socket: Socket) {
        named.append((actor, socket))
        learnEndpoints()
    }

    private func learnEndpoints() {
        for (actor, socket) in named where socket.isOpen {
            if let l = try? socket.localAddress, l.port != 0 {
                let e = Endpoint(l.ip, l.port)
                // An accepted socket shares the listening port: the first name given wins.
                if actorByEndpoint[e] == nil { actorByEndpoint[e] = actor }
            }
        }
    }

    /// Runs one call as a numbered step. `body` returns the call's result; an `Errno` it throws is recorded as
    /// the call's errno and handed back as `.failure`.
    @discardableResult
    public func step<T>(
        _ actor: String, _ name: String, _ args: [(String, ArgumentValue)] = [], note: LabText? = nil,
        result: (T) -> Int? = { _ in 0 }, local: SocketAddress? = nil, remote: SocketAddress? = nil,
        _ body: () throws(Errno) -> T
    ) -> Result<T, Errno> {
        let start = realtimeNow()
        let outcome: Result<T, Errno> = LabNamespaces.within(namespaces, actor: actor) {
            do throws(Errno) {
                return .success(try body())
            } catch {
                return .failure(error)
            }
        }
        let end = realtimeNow()
        settleAfterStep()
        var call = CallEvent(
            id: nextID, actor: actor, name: name, args: args, result: nil, start: start, end: end,
            local: local?.description, remote: remote?.description)
        switch outcome {
        case .success(let value): call.result = result(value)
        case .failure(let e): call.errno = e.name
        }
        call.note = note?.text(configuration.language)
        learnEndpoints()
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

    /// Like `step`, but an error ends the run with a message naming the step, and what `hint` says about that
    /// error.
    @discardableResult
    public func require<T>(
        _ actor: String, _ name: String, _ args: [(String, ArgumentValue)] = [], note: LabText? = nil,
        result: (T) -> Int? = { _ in 0 }, local: SocketAddress? = nil, remote: SocketAddress? = nil,
        hint: ((Errno) -> String?)? = nil, _ body: () throws(Errno) -> T
    ) throws(LabError) -> T {
        switch step(actor, name, args, note: note, result: result, local: local, remote: remote, body) {
        case .success(let v): return v
        case .failure(let e):
            let shown = args.map { $0.1.description }.joined(separator: ", ")
            throw LabError(
                "step \(nextID - 1) \(actor) \(name)(\(shown)) failed: \(e.name) (\(e.message))"
                    + (hint?(e).map { "; \($0)" } ?? ""))
        }
    }

    /// What to say when `actor`'s bind to `address` failed with `error`: for EADDRINUSE, what holds the address
    /// (asked in the actor's namespace) and what to do. `reusing`: the socket had SO_REUSEADDR. `option` names
    /// the flag that moves the address (`--server`), to suggest a free port with it.
    func bindHint(_ error: Errno, _ address: SocketAddress, actor: String, reusing: Bool, option: String?) -> String? {
        switch error {
        case .addressInUse:
            // One dump of the actor's namespace answers both: who holds the address, which port is free near it.
            let (holders, records) = LabNamespaces.within(namespaces, actor: actor) {
                let records = SocketDiag.tcpRecordsForHolders()
                return (records.map { SocketDiag.holders(of: address, in: $0) }, records)
            }
            let port = records.flatMap { AddressInUse.freePort(near: address, records: $0) }
            let alternative = option.flatMap { flag in
                port.map { "\(flag) \(SocketAddress(ip: address.ip, port: $0))" }
            }
            return AddressInUse.explanation(
                address, holders: holders, reusing: reusing, placement: placement, alternative: alternative)
        case .addressNotAvailable:
            return "\(address.ip) is not an address of this host; choose one that `ip address` lists"
        default:
            return nil
        }
    }

    /// Adds a note to the last step (what the kernel did meanwhile, what the reader should look at).
    public func note(_ text: LabText) {
        guard !calls.isEmpty else { return }
        let t = text.text(configuration.language)
        let i = calls.count - 1
        calls[i].note = calls[i].note.map { $0 + "\n      " + t } ?? t
    }

    /// One call of a `together` step: who runs it and what it does.
    public struct Concurrent {
        public var actor: String
        public var name: String
        public var args: [(String, ArgumentValue)]
        /// Returns the call's result (bytes moved, 0 for success).
        public var body: () throws(Errno) -> Int
        public init(
            _ actor: String, _ name: String, _ args: [(String, ArgumentValue)] = [],
            _ body: @escaping () throws(Errno) -> Int
        ) {
            self.actor = actor
            self.name = name
            self.args = args
            self.body = body
        }
    }

    /// Runs calls at the same moment on their own threads (released together by a start flag), each recorded as
    /// its own step; the errno of each is returned in order. Packets are attributed to the overlapping call whose
    /// actor sent them.
    @discardableResult
    public func together(_ parts: [Concurrent], note: LabText? = nil) -> [Errno?] {
        let runs = parts.map { ConcurrentRun(part: $0, namespaces: namespaces) }
        let gate = StartGate(count: runs.count)
        var threads: [pthread_t] = []
        var unstarted: [ConcurrentRun] = []
        for run in runs {
            run.gate = gate
            let box = Unmanaged.passRetained(run)
            var tid = pthread_t()
            let rc = pthread_create(
                &tid, nil,
                { arg in
                    let me = Unmanaged<ConcurrentRun>.fromOpaque(arg!).takeRetainedValue()
                    me.run()
                    return nil
                }, box.toOpaque())
            if rc == 0 {
                threads.append(tid)
            } else {
                box.release()
                unstarted.append(run)
            }
        }
        // A call the system gave no thread runs here, after the others were released: waiting at the gate on this
        // thread would wait for threads that were never made.
        for run in unstarted {
            run.gate = nil
            gate.arrive()
        }
        for run in unstarted { run.run() }
        for t in threads { pthread_join(t, nil) }
        settleAfterStep()
        learnEndpoints()
        let states = readStates()
        for run in runs.sorted(by: { $0.start < $1.start }) {
            var call = CallEvent(
                id: nextID, actor: run.part.actor, name: run.part.name, args: run.part.args, result: nil,
                start: run.start, end: run.end)
            if let e = run.error { call.errno = e.name } else { call.result = run.result }
            call.tcpStates = states
            if let w = watched.first(where: { $0.actor == run.part.actor }) {
                call.local = w.local?.description
                call.remote = w.remote?.description
            }
            calls.append(call)
            nextID += 1
        }
        if let note { self.note(note) }
        return runs.map(\.error)
    }

    func readStates() -> [(String, TCPState)] {
        var states: [(String, TCPState)] = []
        for i in watched.indices {
            var w = watched[i]
            if let s = w.socket, s.isOpen {
                // Remember the addresses while the descriptor is open, to find the connection after close.
                if let l = try? s.localAddress, l.port != 0 { w.local = l }
                if w.remote == nil, let r = try? s.remoteAddress { w.remote = r }
                w.lastState = s.tcpState() ?? .closed
            } else if let l = w.local {
                // /proc/net/tcp shows the reading thread's namespace: read it from the actor's.
                let remote = w.remote
                w.lastState = LabNamespaces.within(namespaces, actor: w.actor) {
                    KernelTCPTable.state(local: l, remote: remote) ?? .closed
                }
            } else {
                w.lastState = .closed
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
        let known = actorByEndpoint
        let attributor = Attributor { endpoint, address in
            if let endpoint, let actor = known[endpoint] { return actor }
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

extension LabSession {
    /// Waits until the wire is quiet. Without a capture the quiet wire cannot be seen, so it waits the same gap,
    /// and the states read next are the ones a captured run shows (a delayed ACK takes 40 ms on Linux).
    func settleAfterStep() {
        if let capture {
            capture.waitUntilQuiet(idle: configuration.settle, limit: configuration.settleLimit)
        } else {
            sleepFor(configuration.settle)
        }
    }
}

func sleepFor(_ d: Duration) {
    var request = timespec(tv_sec: Int(d.components.seconds), tv_nsec: Int(d.components.attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// One thread of a `together` step.
final class ConcurrentRun: @unchecked Sendable {
    let part: LabSession.Concurrent
    let namespaces: (any LabNetwork)?
    var gate: StartGate?
    var start = Timestamp(seconds: 0, nanoseconds: 0)
    var end = Timestamp(seconds: 0, nanoseconds: 0)
    var error: Errno?
    var result = 0

    init(part: LabSession.Concurrent, namespaces: (any LabNetwork)?) {
        self.part = part
        self.namespaces = namespaces
    }

    func run() {
        gate?.arriveAndWait()
        let body = part.body
        start = realtimeNow()
        let outcome = LabNamespaces.within(namespaces, actor: part.actor) { () -> Result<Int, Errno> in
            do throws(Errno) {
                return .success(try body())
            } catch { return .failure(error) }
        }
        switch outcome {
        case .success(let n): result = n
        case .failure(let e): error = e
        }
        end = realtimeNow()
    }
}

/// Releases every thread at once when the last one arrives, so their calls start within microseconds.
///
/// The mutex and the condition live in memory of their own: pthreads needs them at a fixed address for their whole
/// life, and Swift promises no stable address for a stored property (`&mutex` may point at a temporary copy).
final class StartGate: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// Guarded by `mutex`.
    private var waiting: Int

    init(count: Int) {
        waiting = count
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Counts one arrival without waiting (for a call that runs without a thread of its own).
    func arrive() {
        pthread_mutex_lock(mutex)
        waiting -= 1
        if waiting <= 0 { pthread_cond_broadcast(condition) }
        pthread_mutex_unlock(mutex)
    }

    func arriveAndWait() {
        pthread_mutex_lock(mutex)
        waiting -= 1
        if waiting <= 0 {
            pthread_cond_broadcast(condition)
        } else {
            while waiting > 0 { pthread_cond_wait(condition, mutex) }
        }
        pthread_mutex_unlock(mutex)
    }
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
