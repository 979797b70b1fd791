import Glibc
import PacketWire
import Sockets
import SystemCalls

/// The two hosts of `--hosts netns`: network namespaces made with `ip netns add`, joined by a veth pair, with
/// the lab's own test addresses (10.200.0.2 for the server, 10.200.0.1 for the client) that exist only inside them.
///
/// Guarantees: `remove()` deletes both namespaces (and with them the veth pair) and is idempotent; it runs at the
/// end of a run, after a failure, and from a SIGINT/SIGTERM handler, so no namespace outlives the lab.
/// A socket belongs to the namespace of the thread that made it, so each step's body runs after `setns(2)` into
/// its actor's namespace and the thread returns to its own namespace afterwards (`within`).
public final class LabNamespaces: LabNetwork, @unchecked Sendable {
    public static let serverIP = IPAddress.v4(0x0ac8_0002)
    public static let clientIP = IPAddress.v4(0x0ac8_0001)
    /// fd00:200::2 and fd00:200::1 (unique-local), for the `ipv6` scenario.
    public static let serverIPv6 = IPAddress.v6(0xfd00_0200_0000_0000, 2)
    public static let clientIPv6 = IPAddress.v6(0xfd00_0200_0000_0000, 1)
    public let serverName: String
    public let clientName: String
    /// The veth end inside the server's namespace, where the lab captures.
    public let serverInterface: String
    let clientInterface: String
    private let serverFD: Int32
    private let clientFD: Int32
    let originalFD: Int32
    private var removed = false

    /// The prefix of every namespace the lab makes, so leftovers can be recognised.
    public static let prefix = "packetflow-lab-"

    public init() throws(LabError) {
        guard geteuid() == 0 else {
            throw LabError(
                "--hosts netns needs root (it runs `ip netns add` and setns(2)); run as root, or drop --hosts")
        }
        let pid = getpid()
        serverName = "\(Self.prefix)\(pid)-server"
        clientName = "\(Self.prefix)\(pid)-client"
        serverInterface = "pfs\(pid)"
        clientInterface = "pfc\(pid)"
        originalFD = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        var made: [String] = []
        func ip(_ args: String...) throws(LabError) {
            let status = runCommand(["ip"] + args)
            if status != 0 {
                for n in made { _ = runCommand(["ip", "netns", "del", n]) }
                throw LabError("`ip \(args.joined(separator: " "))` failed (status \(status)); is iproute2 installed?")
            }
        }
        // Armed before anything exists, so a signal at any point removes what was made so far (removing what
        // was not made yet fails harmlessly).
        LabNamespaces.armCleanup(namespaces: [serverName, clientName], link: serverInterface)
        try ip("netns", "add", serverName)
        made.append(serverName)
        try ip("netns", "add", clientName)
        made.append(clientName)
        try ip("link", "add", serverInterface, "type", "veth", "peer", "name", clientInterface)
        try ip("link", "set", serverInterface, "netns", serverName)
        try ip("link", "set", clientInterface, "netns", clientName)
        try ip("-n", serverName, "addr", "add", "10.200.0.2/24", "dev", serverInterface)
        try ip("-n", clientName, "addr", "add", "10.200.0.1/24", "dev", clientInterface)
        // nodad: without it the addresses stay "tentative" for a second or two and bind fails.
        try ip("-n", serverName, "addr", "add", "fd00:200::2/64", "dev", serverInterface, "nodad")
        try ip("-n", clientName, "addr", "add", "fd00:200::1/64", "dev", clientInterface, "nodad")
        for (ns, dev) in [(serverName, serverInterface), (clientName, clientInterface)] {
            try ip("-n", ns, "link", "set", "lo", "up")
            try ip("-n", ns, "link", "set", dev, "up")
        }
        serverFD = open("/run/netns/\(serverName)", O_RDONLY | O_CLOEXEC)
        clientFD = open("/run/netns/\(clientName)", O_RDONLY | O_CLOEXEC)
        guard serverFD >= 0, clientFD >= 0, originalFD >= 0 else {
            remove()
            throw LabError("cannot open the lab's namespaces under /run/netns")
        }
    }

    deinit { remove() }

    /// Deletes both namespaces; the veth pair goes with them.
    public func remove() {
        guard !removed else { return }
        removed = true
        for fd in [serverFD, clientFD] where fd >= 0 { close(fd) }
        _ = runCommand(["ip", "netns", "del", serverName])
        _ = runCommand(["ip", "netns", "del", clientName])
        LabNamespaces.disarmCleanup()
        if originalFD >= 0 { close(originalFD) }
    }

    /// Server… → the server's namespace, anything else → the client's.
    func namespace(of actor: String) -> Int32 { actor.hasPrefix("server") ? serverFD : clientFD }

    /// Runs `body` with the calling thread in `actor`'s namespace, then returns the thread to where it was.
    /// Without namespaces it just runs `body`.
    static func within<T>(_ namespaces: (any LabNetwork)?, actor: String, _ body: () -> T) -> T {
        guard let namespaces else { return body() }
        let target = namespaces.namespace(of: actor)
        // The thread's own namespace, not the process's: a `together` thread starts in the process's.
        let back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        _ = Linux.setns(target, Linux.CLONE_NEWNET)
        defer {
            _ = Linux.setns(back >= 0 ? back : namespaces.originalFD, Linux.CLONE_NEWNET)
            if back >= 0 { close(back) }
        }
        return body()
    }

    /// Names of namespaces whose directory under /run/netns starts with the lab's prefix (for tests and leftovers).
    public static func existing() -> [String] {
        ProcFiles.names(in: "/run/netns").filter { $0.hasPrefix(prefix) }
    }

    // MARK: Cleanup on SIGINT / SIGTERM / SIGHUP

    /// argv arrays for `ip link del` (the veth pair, while it is still outside the namespaces) and `ip netns del`,
    /// built before the handler is installed: a handler must not allocate.
    nonisolated(unsafe) static var cleanupArgv: [UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>] = []

    static let cleanupSignals = [SIGINT, SIGTERM, SIGHUP]

    /// stderr of the cleanup's `ip` to /dev/null (deleting what is already gone complains), set up in advance.
    nonisolated(unsafe) static var cleanupActions: posix_spawn_file_actions_t = {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        return actions
    }()

    static func armCleanup(namespaces: [String], link: String) {
        let commands = [["ip", "link", "del", link]] + namespaces.map { ["ip", "netns", "del", $0] }
        cleanupArgv = commands.map { words in
            let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: words.count + 1)
            for (i, w) in words.enumerated() { argv[i] = strdup(w) }
            argv[words.count] = nil
            return argv
        }
        _ = cleanupActions
        let handler: @convention(c) (Int32) -> Void = { signal in
            for argv in LabNamespaces.cleanupArgv {
                var pid = pid_t()
                if posix_spawn(&pid, "/usr/sbin/ip", &LabNamespaces.cleanupActions, nil, argv, environ) == 0
                    || posix_spawn(&pid, "/sbin/ip", &LabNamespaces.cleanupActions, nil, argv, environ) == 0
                {
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                }
            }
            Glibc.signal(signal, SIG_DFL)
            raise(signal)
        }
        for s in cleanupSignals { Glibc.signal(s, handler) }
    }

    static func disarmCleanup() {
        for s in cleanupSignals { Glibc.signal(s, SIG_DFL) }
        cleanupArgv = []
    }
}

/// The network namespaces a lab run's actors are placed in, as descriptors for `setns(2)`.
protocol LabNetwork: AnyObject, Sendable {
    /// The namespace `actor`'s calls run in.
    func namespace(of actor: String) -> Int32
    /// The namespace the lab started in: where a thread returns when its own cannot be opened.
    var originalFD: Int32 { get }
}

/// The loopback lab's own network namespace: new, unnamed, with only `lo`, brought up (127.0.0.0/8 and ::1), and
/// both sides of the lab in it.
///
/// Guarantees: nothing else on the host shares its ports or its wire, so a TIME_WAIT or a server left on the
/// host's 127.0.0.2:49152 cannot make the lab's bind fail, and the lab captures only its own packets. It has no
/// name under /run/netns: it lives while its descriptor or a socket made in it does, so it cannot outlive the lab
/// whatever signal ends it, and there is nothing to clean up.
public final class PrivateLoopback: LabNetwork, @unchecked Sendable {
    let descriptor: Int32
    let originalFD: Int32

    private init(descriptor: Int32, original: Int32) {
        self.descriptor = descriptor
        self.originalFD = original
    }

    deinit {
        close(descriptor)
        close(originalFD)
    }

    func namespace(of actor: String) -> Int32 { descriptor }

    /// Makes the namespace on the calling thread (`unshare(2)`), brings its `lo` up, and returns the thread to its
    /// own namespace; or the errno of what the kernel refused (EPERM without CAP_SYS_ADMIN).
    public static func make() -> Result<PrivateLoopback, Errno> {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { return .failure(Errno(rawValue: errno)) }
        guard Linux.unshare(Linux.CLONE_NEWNET) == 0 else {
            let error = Errno(rawValue: errno)
            close(original)
            return .failure(error)
        }
        let descriptor = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let failure = descriptor < 0 ? Errno(rawValue: errno) : bringLoopbackUp()
        // Cannot fail once unshare succeeded (the same privilege); if it did, the thread would stay in the new
        // namespace, where the lab's calls go anyway.
        _ = Linux.setns(original, Linux.CLONE_NEWNET)
        if let failure {
            if descriptor >= 0 { close(descriptor) }
            close(original)
            return .failure(failure)
        }
        return .success(PrivateLoopback(descriptor: descriptor, original: original))
    }

    /// `ip link set lo up` as one rtnetlink request (RTM_NEWLINK with IFF_UP) in the calling thread's namespace; nil
    /// when the kernel acknowledged it.
    static func bringLoopbackUp() -> Errno? {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Linux.NETLINK_ROUTE)
        guard fd >= 0 else { return Errno(rawValue: errno) }
        defer { close(fd) }
        let index = if_nametoindex("lo")
        guard index != 0 else { return Errno(rawValue: errno) }
        // nlmsghdr (len, type RTM_NEWLINK = 16, flags NLM_F_REQUEST | NLM_F_ACK, seq, pid), then ifinfomsg
        // (family AF_UNSPEC, pad, type, index, flags IFF_UP, change IFF_UP).
        var request = [UInt8](repeating: 0, count: 32)
        func put32(_ value: UInt32, at offset: Int) { SocketDiag.putNative32(value, at: offset, in: &request) }
        put32(32, at: 0)
        request[4] = 16
        request[6] = 0x05
        put32(1, at: 8)
        put32(index, at: 20)
        put32(1, at: 24)
        put32(1, at: 28)
        guard SocketDiag.sendToKernel(fd, request) else { return Errno(rawValue: errno) }
        return SocketDiag.acknowledgment(fd)
    }
}

/// Runs a program found on PATH (`posix_spawnp`), its output discarded; returns its exit status (-1 if it could
/// not start).
func runCommand(_ argv: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid = pid_t()
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
    guard rc == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
}
