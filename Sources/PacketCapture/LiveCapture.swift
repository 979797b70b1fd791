/// PacketCapture: live capture and BPF filters through libpcap.
///
/// `LiveCapture` opens an interface with immediate mode and nanosecond timestamps, applies a BPF filter, and hands
/// each packet to the caller as a `ByteView` that is valid only during the callback (libpcap reuses its ring
/// buffer). Kernel drop counts are always available through `statistics()`, so nothing is lost silently.
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

public final class LiveCapture {
    public struct Options: Sendable {
        public var interface: String = "lo"
        public var filter: String?
        public var snapshotLength: Int32 = 262_144
        public var immediate = true
        public var promiscuous = false
        /// Kernel buffer in bytes; libpcap's default (2 MiB on Linux) when nil.
        public var bufferSize: Int32?
        /// The buffering timeout (milliseconds) when `immediate` is off. In immediate mode a blocking `dispatch`
        /// waits for the next packet however long it takes: use `setNonblocking` or `breakLoop` to get out.
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
        if let filter = options.filter, !filter.isEmpty {
            do throws(CaptureError) {
                try Self.apply(filter: filter, to: h)
            } catch {
                // Every property is set, so deinit runs after this throw: close through close(), which deinit's
                // own call then skips (pcap_close here as well was a double free).
                close()
                throw error
            }
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
    public func dispatch(maxPackets: Int32 = -1, _ body: (CaptureInfo, ByteView) -> Void) throws(CaptureError) -> Int
    {
        let link = linkType
        let nano = nanosecondTimestamps
        return try withoutActuallyEscaping(body) { (escapable) throws(CaptureError) -> Int in
            var context = DispatchContext(body: escapable, linkType: link, nanosecond: nano)
            let n = withUnsafeMutablePointer(to: &context) { ctx in
                pcap_dispatch(handle, maxPackets, { user, header, bytes in
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
