/// PacketCapture: live capture and BPF filters through libpcap.
///
/// `LiveCapture` opens an interface with nanosecond timestamps, applies a BPF filter, and hands each packet to the
/// caller as a `ByteView` that is valid only during the callback (libpcap reuses its ring buffer). Kernel drop
/// counts are always available through `statistics()`, so nothing is lost silently.
///
/// How packets reach the reader (`Options.immediate`):
/// - Buffered (libpcap's TPACKET_V3 ring, as tcpdump uses it): the kernel packs packets into blocks and wakes the
///   reader once a block is full or the read timeout retires it. One wake-up carries hundreds of packets; a packet
///   waits at most the read timeout. For files, pipes and programs that only need the packets afterwards.
/// - Immediate (TPACKET_V2): a wake-up per packet, and every packet takes a slot sized for the interface's largest
///   frame (on `lo`, MTU 65536, a 2 MiB ring holds 32 packets however small they are). Only for a person watching
///   a terminal or a step that needs its packets at once.
///
/// On a loopback interface the kernel hands a packet socket every packet twice, as sent and as received, and
/// libpcap throws the sent copy away after it has taken room in the ring. `LiveCapture` rejects that copy in the
/// kernel filter instead (`inbound`), so the ring holds twice as many packets and the kernel's drop count counts
/// each lost packet once.
import CPcap
import Glibc
import PacketWire

/// Why a capture could not start or go on. `description` is one line a user can act on.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case permission, noSuchDevice, filter, other }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Counters from `pcap_stats(3PCAP)`.
public struct CaptureStatistics: Sendable, Equatable {
    /// Packets that passed the filter.
    public var received: UInt64
    /// Packets the kernel dropped because the capture buffer was full.
    public var droppedByKernel: UInt64
    /// Packets the interface or driver dropped (not all platforms count these).
    public var droppedByInterface: UInt64
}

/// A live capture on one interface through libpcap. Every packet that passed the filter is either delivered by
/// `dispatch` or counted in `statistics()` as dropped by the kernel.
public final class LiveCapture {
    public struct Options: Sendable {
        public var interface: String = "lo"
        public var filter: String?
        public var snapshotLength: Int32 = 262_144
        /// A wake-up per packet (see the module comment). Off, the kernel hands packets over in blocks, each at
        /// most `readTimeoutMilliseconds` after its first packet arrived.
        public var immediate = true
        public var promiscuous = false
        /// Kernel buffer in bytes; libpcap's default (2 MiB on Linux) when nil.
        public var bufferSize: Int32?
        /// The buffering timeout (milliseconds) when `immediate` is off. A blocking `dispatch` waits for the next
        /// packet however long it takes (the kernel retires no empty block): poll with `wait`, or `breakLoop`.
        public var readTimeoutMilliseconds: Int32 = 20

        public init(interface: String = "lo", filter: String? = nil) {
            self.interface = interface
            self.filter = filter
        }
    }

    /// The pcap handle; internal for the flags of CaptureFlags.swift (`setDirection`).
    let handle: OpaquePointer
    public let options: Options
    public let linkType: LinkType
    /// True when the kernel gives nanosecond timestamps (libpcap falls back to microseconds otherwise).
    public let nanosecondTimestamps: Bool
    private var closed = false

    public init(_ options: Options) throws(CaptureError) {
        self.options = options
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_create(options.interface, &errbuf) else {
            let message = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CaptureError(.other, "cannot open \(options.interface): \(message)")
        }
        handle = h
        pcap_set_snaplen(h, options.snapshotLength)
        pcap_set_promisc(h, options.promiscuous ? 1 : 0)
        pcap_set_timeout(h, options.readTimeoutMilliseconds)
        if options.immediate { pcap_set_immediate_mode(h, 1) }
        if let size = options.bufferSize { pcap_set_buffer_size(h, size) }
        let nanoOK = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO)) == 0
        let status = pcap_activate(h)
        if status < 0 {
            let detail = String(cString: pcap_geterr(h))
            pcap_close(h)
            throw Self.activationError(status, interface: options.interface, detail: detail)
        }
        nanosecondTimestamps = nanoOK && pcap_get_tstamp_precision(h) == Int32(PCAP_TSTAMP_PRECISION_NANO)
        linkType = LinkType(rawValue: UInt32(bitPattern: pcap_datalink(h)))
        let filter = options.filter ?? ""
        if !filter.isEmpty {
            do throws(CaptureError) {
                try Self.apply(filter: filter, to: h)
            } catch {
                // Every property is set, so deinit runs after this throw: close through close(), which deinit's
                // own call then skips (pcap_close here as well was a double free).
                close()
                throw error
            }
        }
        // libpcap keeps the user's filter above for the packets already in the ring, which it filters itself; the
        // kernel gets `inbound and (filter)` on top.
        if linkType == .ethernet && Self.isLoopback(options.interface) {
            _ = Self.rejectSentCopiesInKernel(filter: filter, h)
        }
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        pcap_close(handle)
    }

    static func activationError(_ status: Int32, interface: String, detail: String) -> CaptureError {
        switch status {
        case PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED:
            return CaptureError(
                .permission,
                "capturing on \(interface) needs CAP_NET_RAW: run as root (sudo), or grant it once with "
                    + "`sudo setcap cap_net_raw,cap_net_admin+eip \"$(command -v packetflow)\"`")
        case PCAP_ERROR_NO_SUCH_DEVICE:
            return CaptureError(.noSuchDevice, "no such interface: \(interface) (see `ip link` for the names)")
        default:
            return CaptureError(.other, "cannot capture on \(interface): \(detail)")
        }
    }

    /// True when `interface` is a loopback device (SIOCGIFFLAGS, in the calling thread's network namespace).
    static func isLoopback(_ interface: String) -> Bool {
        let name = Array(interface.utf8)
        var request = ifreq()
        guard name.count < MemoryLayout.size(ofValue: request.ifr_ifrn.ifrn_name) else { return false }
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
            for (i, byte) in name.enumerated() { raw[i] = byte }
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        guard ioctl(fd, UInt(SIOCGIFFLAGS), &request) == 0 else { return false }
        return Int32(request.ifr_ifru.ifru_flags) & Int32(IFF_LOOPBACK) != 0
    }

    /// `struct sock_fprog` of <linux/filter.h>, which Glibc does not import; libpcap's `bpf_insn` has the layout
    /// of the kernel's `sock_filter`. The layout is checked before use, as a C mirror's `_Static_assert` would.
    private struct SocketFilterProgram {
        var count: UInt16
        var instructions: UnsafeMutablePointer<bpf_insn>?
    }

    /// Attaches `inbound and (filter)` to the capture's socket in the kernel (SO_ATTACH_FILTER), so the sent copy
    /// of each loopback packet, which libpcap would throw away, takes no room in the ring and is never counted as
    /// dropped. Not through `pcap_setfilter`: libpcap also runs a new filter itself over the packets already in
    /// the ring, and its interpreter cannot read the packet direction `inbound` tests, so it would reject them
    /// all. False, and the filter set before stays, when the program cannot be made or attached. libpcap gives
    /// the kernel an Ethernet link type's program unchanged, and so does this.
    static func rejectSentCopiesInKernel(filter: String, _ h: OpaquePointer) -> Bool {
        var program = bpf_program()
        let inbound = filter.isEmpty ? "inbound" : "inbound and (\(filter))"
        guard pcap_compile(h, &program, inbound, 1, PCAP_NETMASK_UNKNOWN) == 0 else { return false }
        defer { pcap_freecode(&program) }
        guard MemoryLayout<SocketFilterProgram>.size == 16,
            MemoryLayout<SocketFilterProgram>.offset(of: \.instructions) == 8,
            let count = UInt16(exactly: program.bf_len)
        else { return false }
        var kernelProgram = SocketFilterProgram(count: count, instructions: program.bf_insns)
        return setsockopt(
            pcap_fileno(h), SOL_SOCKET, SO_ATTACH_FILTER, &kernelProgram,
            socklen_t(MemoryLayout<SocketFilterProgram>.size)) == 0
    }

    static func apply(filter: String, to h: OpaquePointer) throws(CaptureError) {
        var program = bpf_program()
        guard pcap_compile(h, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError(.filter, "bad filter '\(filter)': \(String(cString: pcap_geterr(h)))")
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(h, &program) == 0 else {
            throw CaptureError(.filter, "cannot set filter '\(filter)': \(String(cString: pcap_geterr(h)))")
        }
    }

    /// Delivers the packets that are ready (waiting up to the read timeout for the first one) and returns how
    /// many were delivered. The `ByteView` is valid only inside `body`.
    @discardableResult
    public func dispatch(maxPackets: Int32 = -1, _ body: (CaptureInfo, ByteView) -> Void) throws(CaptureError) -> Int {
        let link = linkType
        let nano = nanosecondTimestamps
        return try withoutActuallyEscaping(body) { (escapable) throws(CaptureError) -> Int in
            var context = DispatchContext(body: escapable, linkType: link, nanosecond: nano)
            let n = withUnsafeMutablePointer(to: &context) { ctx in
                pcap_dispatch(
                    handle, maxPackets,
                    { user, header, bytes in
                        guard let user, let header, let bytes else { return }
                        let ctx = UnsafeMutableRawPointer(user).assumingMemoryBound(to: DispatchContext.self)
                        let h = header.pointee
                        let fraction = UInt32(truncatingIfNeeded: h.ts.tv_usec) &* (ctx.pointee.nanosecond ? 1 : 1000)
                        let info = CaptureInfo(
                            timestamp: Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: fraction),
                            capturedLength: Int(h.caplen), originalLength: Int(h.len), linkType: ctx.pointee.linkType)
                        ctx.pointee.body(info, ByteView(UnsafeRawBufferPointer(start: bytes, count: Int(h.caplen))))
                    }, UnsafeMutableRawPointer(ctx).assumingMemoryBound(to: UInt8.self))
            }
            if n == PCAP_ERROR { throw CaptureError(.other, "capture failed: \(String(cString: pcap_geterr(handle)))") }
            return max(Int(n), 0)
        }
    }

    private struct DispatchContext {
        var body: (CaptureInfo, ByteView) -> Void
        var linkType: LinkType
        var nanosecond: Bool
    }

    /// Makes a `dispatch` in progress on another thread return as soon as possible.
    public func breakLoop() { pcap_breakloop(handle) }

    /// What `wait` found.
    public struct Readiness: Sendable, Equatable {
        /// Packets (or an error, which the next `dispatch` reports) are ready.
        public var packets: Bool
        /// The `wake` descriptor is readable.
        public var woken: Bool
    }

    /// Waits with poll(2) until packets are ready, `wake` is readable, or `timeoutMilliseconds` have passed (-1:
    /// no limit). With `setNonblocking(true)` a `dispatch` then hands over what is ready without blocking, so a
    /// loop of `wait` and `dispatch` can also watch its own descriptor: a self-pipe that a signal handler writes
    /// to stops it without the handler touching the capture. Interrupted by a signal, it returns nothing ready.
    public func wait(timeoutMilliseconds: Int32, wake: Int32? = nil) -> Readiness {
        var fds = [pollfd(fd: pcap_get_selectable_fd(handle), events: Int16(POLLIN), revents: 0)]
        if let wake { fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
        guard poll(&fds, nfds_t(fds.count), timeoutMilliseconds) > 0 else {
            return Readiness(packets: false, woken: false)
        }
        return Readiness(packets: fds[0].revents != 0, woken: fds.count > 1 && fds[1].revents != 0)
    }

    /// `pcap_setnonblock(3PCAP)`: with it `dispatch` returns at once when nothing is ready (used to drain the ring
    /// after the capture thread has stopped).
    public func setNonblocking(_ on: Bool) {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        _ = pcap_setnonblock(handle, on ? 1 : 0, &errbuf)
    }

    /// Packets received and dropped since the capture started (`pcap_stats(3PCAP)`).
    public func statistics() -> CaptureStatistics? {
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return CaptureStatistics(
            received: UInt64(s.ps_recv), droppedByKernel: UInt64(s.ps_drop), droppedByInterface: UInt64(s.ps_ifdrop))
    }
}

/// A BPF filter compiled by libpcap for a link type and applied to packets from files (`pcap_offline_filter`).
public final class BPFFilter {
    private var program = bpf_program()
    public let expression: String

    public init(_ expression: String, linkType: LinkType, snapshotLength: Int32 = 262_144) throws(CaptureError) {
        self.expression = expression
        // Files carry LINKTYPE_ values and libpcap takes DLT_ ones; they differ for raw IP (101 in files, DLT_RAW
        // 12 on Linux), the one such link type the decoder reads.
        let dlt = linkType.rawValue == 101 ? 12 : Int32(bitPattern: linkType.rawValue)
        guard let dead = pcap_open_dead(dlt, snapshotLength) else {
            throw CaptureError(.other, "libpcap cannot compile filters for link type \(linkType)")
        }
        defer { pcap_close(dead) }
        guard pcap_compile(dead, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError(.filter, "bad filter '\(expression)': \(String(cString: pcap_geterr(dead)))")
        }
    }

    deinit { pcap_freecode(&program) }

    /// True when the packet passes the filter.
    public func matches(_ bytes: ByteView, capturedLength: Int, originalLength: Int) -> Bool {
        var header = pcap_pkthdr()
        // libpcap reads caplen bytes, so never claim more than the view holds.
        header.caplen = bpf_u_int32(truncatingIfNeeded: min(capturedLength, bytes.count))
        header.len = bpf_u_int32(truncatingIfNeeded: originalLength)
        return bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return false }
            return pcap_offline_filter(&program, &header, base.assumingMemoryBound(to: UInt8.self)) != 0
        }
    }
}
