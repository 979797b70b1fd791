import Glibc
import PacketWire
import Synchronization
import Timeline

/// One line per packet in the manner of `tcpdump -nn`: time of day (UTC, microseconds), addresses and ports,
/// flags in tcpdump's letters, seq/ack (relative, as Wireshark numbers them, or absolute with
/// `absoluteSequence`), window, options in wire order, payload length. TCP analysis, truncation and
/// malformed headers follow in brackets. With `absoluteSequence` a TCP/UDP line over Ethernet is byte for byte
/// what `TZ=UTC tcpdump -nn -S` prints, and so are ICMP and ICMPv6 lines, tcpdump's marks for an IP length beyond
/// the packet and an impossible record, and its UNSUPPORTED dump of an undecoded link type.
///
/// Everything is written into an `OutputBuffer`; nothing allocates for an IPv4 TCP or UDP packet.
public struct PacketText: Sendable {
    public var absoluteSequence = false
    /// Payload as text after the line (UTF-8 as is, Japanese included; control and invalid bytes escaped).
    public var payload = false
    /// tcpdump's display flags (`-v`, `-e`, `-q`, `-t`…, `-#`, the dumps). Without them, or with only a dump,
    /// `write(_:info:decoded:bytes:into:)` prints the line; with them, `write(…number:state:into:)` does.
    public var flags = TcpdumpFlags()

    public init(absoluteSequence: Bool = false, payload: Bool = false, flags: TcpdumpFlags = TcpdumpFlags()) {
        self.absoluteSequence = absoluteSequence
        self.payload = payload
        self.flags = flags
    }

    /// What tcpdump prints before a Linux cooked v2 (`-i any`) packet: the interface, named as on this machine
    /// (tcpdump does the same, so a file from another machine may show other names; an index this machine lacks is
    /// "?"), and the direction.
    static func cookedPrefix(_ packetType: UInt16, _ index: UInt32, into o: inout OutputBuffer) {
        o.padded(interfaceName(index), 5)
        o.byte(0x20)
        switch packetType {
        case 0: o.append("In  ")
        case 1: o.append("B   ")
        case 2: o.append("M   ")
        case 3: o.append("P   ")
        case 4: o.append("Out ")
        default: o.append("?   ")
        }
    }

    /// if_indextoname(3) asks the kernel through a socket: once per index, then from memory.
    static let interfaceNames = Mutex<[UInt32: String]>([:])

    static func interfaceName(_ index: UInt32) -> String {
        if let name = interfaceNames.withLock({ $0[index] }) { return name }
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        let name = if_indextoname(index, &buffer) != nil
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        interfaceNames.withLock { $0[index] = name }
        return name
    }

    /// One packet's line (and its payload or hex dump when asked): `t` from `PacketEventBuilder.track`.
    public func write(
        _ t: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer
    ) {
        var style = PlainLine()
        line(&style, t, info: info, decoded: d, bytes: bytes, into: &o)
    }

    /// The line with tcpdump's display flags (`flags`): `number` is the packet's for `-#`, `state` what `-ttt`
    /// and `-ttttt` remember between lines.
    public func write(
        _ t: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket, bytes: ByteView, number: Int,
        state: inout TcpdumpLineState, into o: inout OutputBuffer
    ) {
        var style = TcpdumpLine(flags: flags, packetNumber: number, state: state)
        line(&style, t, info: info, decoded: d, bytes: bytes, into: &o)
        state = style.state
    }

    /// The line in `style`: every choice a style makes is a test on it, which the plain style's constants remove.
    /// Inlined into `write`, so the plain line costs no call more than it did.
    @inline(__always)
    func line<S: LineStyle>(
        _ s: inout S, _ t: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket, bytes: ByteView,
        into o: inout OutputBuffer
    ) {
        let e = Trailer(track: t, info: info, decoded: d)
        if !s.isQuoted {
            s.number(into: &o)
            if e.mark == .invalidRecord, let items = info.invalidLengths {
                // tcpdump believes nothing else of such a record: no time, no decode, no dump.
                o.append("[Invalid header: ")
                for (i, item) in items.enumerated() {
                    if i > 0 { o.append(", ") }
                    o.append(item)
                }
                o.append("]\n")
                return
            }
            s.time(info.timestamp, into: &o)
            if e.mark == .unsupportedLink {
                // tcpdump's line for a link type it has no printer for: the word, then every captured byte.
                o.append("UNSUPPORTED\n")
                if payload, d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, d.capturedPayloadLength)
                {
                    Self.payloadText(p, into: &o)
                }
                Self.hexDump(bytes, into: &o)
                // A dump asked for comes on top, the link header being nothing.
                Self.dump(flags.dump, bytes, linkLength: 0, into: &o)
                return
            }
            if case .cooked(2, let packetType, _, let index?) = d.link {
                Self.cookedPrefix(packetType, index, into: &o)
            }
            if s.linkHeader { Self.linkHeader(d, info: info, bytes: bytes, quick: s.quick, into: &o) }
        }
        switch d.network {
        case .ipv4:
            // With -e the link header has named the protocol.
            if !s.linkHeader { o.append("IP ") }
            if e.mark == .lengthBeyondPacket, let missing = e.missing {
                o.append("truncated-ip - ")
                o.decimal(missing)
                o.append(" bytes missing! ")
            }
            // (The header is taken out of the decoded packet only here: a copy per packet costs the plain line.)
            if s.verbosity > 0, case .ipv4(let ip) = d.network, !Self.ipv4Verbose(ip, d, bytes: bytes, into: &o) {
                // An IP option cut short: tcpdump names the addresses and stops.
                o.address(ip.source)
                o.append(" > ")
                o.address(ip.destination)
                o.append(":  [|ip]")
                if !s.isQuoted { Self.endLine(&o) }
                return
            }
        case .ipv6:
            if !s.linkHeader { o.append("IP6 ") }
            if e.mark == .lengthBeyondPacket, let missing = e.missing {
                // tcpdump's IPv6 mark has no space before the addresses.
                o.append("truncated-ip6 - ")
                o.decimal(missing)
                o.append(" bytes missing!")
            }
            if s.verbosity > 0, case .ipv6(let ip) = d.network { Self.ipv6Verbose(ip, d, bytes: bytes, into: &o) }
        case .arp(let arp):
            if !s.linkHeader { o.append("ARP, ") }
            switch arp.operation {
            case 1:
                o.append("Request who-has ")
                if let t = arp.targetIP { o.address(t) }
                o.append(" tell ")
                if let s = arp.senderIP { o.address(s) }
            case 2:
                o.append("Reply ")
                if let s = arp.senderIP { o.address(s) }
            default:
                o.append("operation ")
                o.decimal(arp.operation)
            }
            finish(&s, e, d, bytes: bytes, into: &o)
            return
        case .unknown(let type):
            o.append("ethertype 0x")
            o.hex(UInt64(type), width: 4)
            o.append(", length ")
            o.decimal(bytes.count)
            finish(&s, e, d, bytes: bytes, into: &o)
            return
        case nil:
            o.append("[link layer only]")
            finish(&s, e, d, bytes: bytes, into: &o)
            return
        }
        let src = d.source!
        let dst = d.destination!
        switch d.transport {
        case .tcp(let tcp):
            endpoints(src, tcp.sourcePort, dst, tcp.destinationPort, into: &o)
            tcpBody(s, t, tcp, d, bytes: bytes, into: &o)
        case .udp(let udp):
            endpoints(src, udp.sourcePort, dst, udp.destinationPort, into: &o)
            if s.verbosity > 0 { Self.udpChecksum(udp, d, bytes: bytes, verbosity: s.verbosity, into: &o) }
            o.append("UDP, length ")
            o.decimal(d.payloadLength)
        case .icmp:
            icmpLine(&s, e, d, info: info, bytes: bytes, into: &o)
            return
        case .unknown(let proto):
            // A quoted TCP or UDP header cut short, as tcpdump shows it.
            if s.isQuoted, Self.cutTransport(proto, d, bytes: bytes, into: &o) { return }
            if Self.isCutICMP(d, proto) {
                icmpLine(&s, e, d, info: info, bytes: bytes, into: &o)
                return
            }
            o.address(src)
            o.append(" > ")
            o.address(dst)
            if case .ipv4(let ip) = d.network, ip.fragmentOffset != 0 {
                // A later fragment: tcpdump names the protocol only.
                o.append(": ip-proto-")
                o.decimal(proto)
            } else {
                // ip_print's "src > dst: ", then ip_demux_print's " ip-proto-N LEN"; a header cut short is ours.
                o.append(d.problem == nil ? ":  ip-proto-" : ": ip-proto-")
                o.decimal(proto)
                o.byte(0x20)
                o.decimal(d.payloadLength)
            }
        case nil:
            o.address(src)
            o.append(" > ")
            o.address(dst)
            o.byte(UInt8(ascii: ":"))
        }
        finish(&s, e, d, bytes: bytes, into: &o)
    }

    /// An ICMP or ICMPv6 line from the addresses on, to its end: out of `line`, whose per-packet path stays small.
    /// Also a first fragment whose ICMP header was cut before its type and code, which tcpdump's printer still
    /// reads.
    @inline(never)
    func icmpLine<S: LineStyle>(
        _ s: inout S, _ trailer: Trailer, _ d: DecodedPacket, info: CaptureInfo, bytes: ByteView,
        into o: inout OutputBuffer
    ) {
        var e = trailer
        // tcpdump's printer gave up on the packet mid-way (a longjmp in tcpdump): its dump then starts at the link
        // header whatever the flag says.
        var dumpsWholePacket = false
        if let src = d.source, let dst = d.destination {
            o.address(src)
            o.append(" > ")
            o.address(dst)
            o.append(": ")
        }
        if case .icmp(let icmp) = d.transport {
            if s.verbosity > 0, icmp.isV6 { Self.icmp6Checksum(d, bytes: bytes, into: &o) }
            // The message as far as it was captured and its IP datagram reaches: what tcpdump's printer sees.
            if !Self.icmp(icmp.isV6, at: d.payloadOffset - 8, length: icmp.length, bytes, verbosity: s.verbosity,
                          into: &o)
            {
                e.markedTruncation(info)
                dumpsWholePacket = !Self.icmpCutIsChecked(icmp.isV6, at: d.payloadOffset - 8, bytes)
            } else if s.verbosity > 0, !icmp.isV6 {
                switch icmpVerbose(s, d, at: d.payloadOffset - 8, length: icmp.length, bytes, into: &o) {
                case .complete: break
                case .cut: e.markedTruncation(info)
                case .gaveUp:
                    e.markedTruncation(info)
                    dumpsWholePacket = true
                }
            }
        } else if case .unknown(let proto) = d.transport {
            // Cut before its type and code: tcpdump's printer reads what there is, then stops.
            if !Self.icmp(proto == 58, at: d.payloadOffset, length: d.payloadLength, bytes, verbosity: s.verbosity,
                          into: &o)
            {
                e.markedTruncation(info)
                dumpsWholePacket = !Self.icmpCutIsChecked(proto == 58, at: d.payloadOffset, bytes)
            }
        }
        finish(&s, e, d, bytes: bytes, fromStart: dumpsWholePacket, into: &o)
    }

    /// The end of a line: the trailer and what follows it (a quoted datagram has neither; the line it is in
    /// ends it).
    @inline(__always)
    func finish<S: LineStyle>(
        _ s: inout S, _ e: Trailer, _ d: DecodedPacket, bytes: ByteView, fromStart: Bool = false,
        into o: inout OutputBuffer
    ) {
        if s.isQuoted { return }
        trailer(e, into: &o)
        extras(d, bytes: bytes, fromStart: fromStart, into: &o)
    }

    /// A line cut short where the trailer has nothing to add.
    static func endLine(_ o: inout OutputBuffer) { o.byte(0x0a) }

    /// HH:MM:SS.uuuuuu of the UTC day (tcpdump's default, truncated to microseconds as tcpdump does).
    static func clock(_ t: Timestamp, into o: inout OutputBuffer) {
        var s = t.seconds % 86_400
        if s < 0 { s += 86_400 }
        o.decimal(UInt64(s / 3600), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(s / 60 % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(s % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: "."))
        o.decimal(UInt64(t.nanoseconds / 1000), minimumWidth: 6)
    }

    func endpoints(_ s: IPAddress, _ sp: UInt16, _ t: IPAddress, _ tp: UInt16, into o: inout OutputBuffer) {
        o.address(s)
        o.byte(UInt8(ascii: "."))
        o.decimal(sp)
        o.append(" > ")
        o.address(t)
        o.byte(UInt8(ascii: "."))
        o.decimal(tp)
        o.append(": ")
    }

    @inline(__always)
    func tcpBody<S: LineStyle>(
        _ s: S, _ t: PacketTrack, _ tcp: TCPHeader, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer
    ) {
        if s.quick {
            // -q: the segment's length by its IP header, nothing else.
            o.append("tcp ")
            o.decimal(d.payloadLength)
            return
        }
        o.append("Flags [")
        let f = tcp.flags
        // tcpdump's letters, in tcpdump's order.
        if f.contains(.fin) { o.byte(UInt8(ascii: "F")) }
        if f.contains(.syn) { o.byte(UInt8(ascii: "S")) }
        if f.contains(.rst) { o.byte(UInt8(ascii: "R")) }
        if f.contains(.psh) { o.byte(UInt8(ascii: "P")) }
        if f.contains(.ack) { o.byte(UInt8(ascii: ".")) }
        if f.contains(.urg) { o.byte(UInt8(ascii: "U")) }
        if f.contains(.ece) { o.byte(UInt8(ascii: "E")) }
        if f.contains(.cwr) { o.byte(UInt8(ascii: "W")) }
        if f.rawValue & 0xff == 0 { o.append("none") }
        o.append("]")
        if s.verbosity > 0 { Self.tcpChecksum(tcp, d, bytes: bytes, into: &o) }
        let relative = !absoluteSequence && t.hasStream
        let seq = relative ? t.relativeSeq : tcp.sequenceNumber
        let ack = relative ? t.relativeAck : tcp.acknowledgmentNumber
        let length = d.payloadLength
        // -vv shows the sequence number of every segment.
        if s.verbosity > 1 || length > 0 || !f.isDisjoint(with: [.syn, .fin, .rst]) {
            o.append(", seq ")
            o.decimal(seq)
            if length > 0 {
                o.byte(UInt8(ascii: ":"))
                o.decimal(seq &+ UInt32(truncatingIfNeeded: length))
            }
        }
        if f.contains(.ack) {
            o.append(", ack ")
            o.decimal(ack)
        }
        o.append(", win ")
        o.decimal(tcp.window)
        if f.contains(.urg) {
            o.append(", urg ")
            o.decimal(tcp.urgentPointer)
        }
        if tcp.headerLength > 20, let optionBytes = bytes.slice(d.payloadOffset - tcp.headerLength + 20,
                                                                tcp.headerLength - 20)
            ?? bytes.suffix(from: d.payloadOffset - tcp.headerLength + 20)
        {
            options(optionBytes, into: &o)
        }
        o.append(", length ")
        o.decimal(length)
        if s.verbosity > 0, f.contains(.rst), length > 0 { Self.resetData(d, bytes: bytes, into: &o) }
    }

    /// The options in wire order, as tcpdump prints them.
    func options(_ b: ByteView, into o: inout OutputBuffer) {
        o.append(", options [")
        var i = 0
        var first = true
        while let kind = b.u8(i) {
            if !first { o.byte(UInt8(ascii: ",")) }
            first = false
            if kind == 0 {
                o.append("eol")
                break
            }
            if kind == 1 {
                o.append("nop")
                i += 1
                continue
            }
            guard let len8 = b.u8(i + 1), len8 >= 2, b.has(i, Int(len8)) else {
                o.append("[bad opt]")
                break
            }
            let len = Int(len8)
            switch kind {
            case 2:
                o.append("mss ")
                o.decimal(b.u16(i + 2) ?? 0)
            case 3:
                o.append("wscale ")
                o.decimal(b.u8(i + 2) ?? 0)
            case 4: o.append("sackOK")
            case 5:
                o.append("sack ")
                o.decimal((len - 2) / 8)
                o.byte(0x20)
                var j = i + 2
                while j + 8 <= i + len, let l = b.u32(j), let r = b.u32(j + 4) {
                    o.byte(UInt8(ascii: "{"))
                    o.decimal(l)
                    o.byte(UInt8(ascii: ":"))
                    o.decimal(r)
                    o.byte(UInt8(ascii: "}"))
                    j += 8
                }
            case 8:
                o.append("TS val ")
                o.decimal(b.u32(i + 2) ?? 0)
                o.append(" ecr ")
                o.decimal(b.u32(i + 6) ?? 0)
            default:
                o.append("unknown-")
                o.decimal(kind)
            }
            i += len
        }
        o.byte(UInt8(ascii: "]"))
    }

    /// What the bracketed end of a line says; plain values, so building one per packet costs nothing.
    struct Trailer {
        var analysis: TCPAnalysisFlags
        var problem: DecodeProblem?
        var truncated: Bool
        /// The problems that change the line itself, not only its end; tested on plain values.
        var mark = Mark.none

        enum Mark { case none, invalidRecord, unsupportedLink, lengthBeyondPacket }

        /// The bytes `lengthBeyondPacket` says are missing.
        var missing: Int? {
            if case .lengthBeyondPacket(let missing, _)? = problem { missing } else { nil }
        }

        /// The line already ends with tcpdump's truncation mark (" [|icmp]"): the decode's problem would repeat it,
        /// only a record the snapshot length cut still says so.
        mutating func markedTruncation(_ info: CaptureInfo) {
            problem = nil
            truncated = info.isTruncated
        }

        @inline(__always) init(track: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket) {
            analysis = track.analysis
            problem = info.holds(networkEnd: d.networkEnd) ? d.problem : d.problem(capturedAs: info)
            truncated = PacketEventBuilder.isTruncated(info, d)
            switch problem {
            case .invalidRecord?: mark = .invalidRecord
            case .unsupportedLink?: mark = .unsupportedLink
            case .lengthBeyondPacket?: mark = .lengthBeyondPacket
            default: break
            }
        }
    }

    /// Analysis, truncation and problems in brackets, then the newline.
    func trailer(_ e: Trailer, into o: inout OutputBuffer) {
        if !e.analysis.isEmpty {
            o.append(" [")
            var first = true
            e.analysis.forEachName { name in
                if !first { o.append(", ") }
                first = false
                o.append(name)
            }
            o.byte(UInt8(ascii: "]"))
        }
        switch e.problem {
        case let problem? where e.mark != .lengthBeyondPacket:
            o.append(" [")
            o.append(problem.description)
            o.byte(UInt8(ascii: "]"))
        default:
            // A length beyond the packet was marked after "IP ", as tcpdump marks it; what the decoder then missed
            // is only its consequence.
            if e.truncated { o.append(" [truncated]") }
        }
        o.byte(0x0a)
    }

    /// The payload text (`--payload`) and the dump the flags ask for, after the line. The dump leaves out the link
    /// header, as tcpdump's `-x`, `-X` and `-A` do, unless `fromStart` (tcpdump dumps the whole packet after its
    /// printer ran out of bytes).
    @inline(__always)
    func extras(_ d: DecodedPacket, bytes: ByteView, fromStart: Bool = false, into o: inout OutputBuffer) {
        if payload, d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, d.capturedPayloadLength) {
            Self.payloadText(p, into: &o)
        }
        if !flags.hasDump { return }
        dump(d, bytes: bytes, fromStart: fromStart, into: &o)
    }

    @inline(never)
    func dump(_ d: DecodedPacket, bytes: ByteView, fromStart: Bool, into o: inout OutputBuffer) {
        Self.dump(flags.dump, bytes, linkLength: fromStart ? 0 : Self.linkLength(d, captured: bytes.count), into: &o)
    }

    /// The payload as indented lines of text: one output line per line of payload, escaped where not text.
    public static func payloadText(_ p: ByteView, into o: inout OutputBuffer) {
        let all = p.copyBytes()
        var start = 0
        while start < all.count {
            var end = start
            while end < all.count, all[end] != 0x0a { end += 1 }
            var line = all[start..<end]
            if line.last == 0x0d { line = line.dropLast() }
            o.append("    ")
            o.append(TextEscaper.escape(line))
            o.byte(0x0a)
            start = end + 1
        }
    }

    /// `tcpdump -XX`: offset, eight groups of two bytes in hex, and the printable ASCII.
    public static func hexDump(_ b: ByteView, into o: inout OutputBuffer) {
        var offset = 0
        while offset < b.count {
            o.append("\t0x")
            o.hex(UInt64(offset), width: 4)
            o.append(":  ")
            let n = min(16, b.count - offset)
            for k in 0..<16 {
                if k < n, let v = b.u8(offset + k) {
                    o.hex(UInt64(v), width: 2)
                } else {
                    o.append("  ")
                }
                if k % 2 == 1 { o.byte(0x20) }
            }
            o.byte(0x20)
            for k in 0..<n {
                let v = b.u8(offset + k) ?? 0
                // tcpdump shows what isgraph(3) accepts: a space is a dot too.
                o.byte(v > 0x20 && v < 0x7f ? v : UInt8(ascii: "."))
            }
            o.byte(0x0a)
            offset += 16
        }
    }
}

// MARK: - ICMP and ICMPv6 as tcpdump prints them

extension OutputBuffer {
    /// Forgets what was written after `count`: tcpdump prints an ICMP message only once it has read all of it.
    mutating func rollBack(to count: Int) { used = min(used, count) }
}

extension PacketText {
    /// The ICMP or ICMPv6 message at `offset` of `bytes`, `length` bytes long by its IP header, as tcpdump prints
    /// it; false when the line ends with tcpdump's truncation mark. Out of `write`, whose per-packet path stays
    /// small (with this inline, Swift copied every decoded packet).
    @inline(never)
    static func icmp(
        _ isV6: Bool, at offset: Int, length: Int, _ bytes: ByteView, verbosity: Int = 0, into o: inout OutputBuffer
    ) -> Bool {
        let m = bytes.suffix(from: offset)?.prefix(max(length, 0)) ?? bytes.prefix(0)
        if isV6 ? icmp6(m, length: length, verbosity: verbosity, into: &o) : icmp4(m, length: length, into: &o) {
            return true
        }
        o.append(isV6 ? " [|icmp6]" : " [|icmp]")
        return false
    }

    /// Whether tcpdump's printer, running out of bytes in the message at `offset` (after `icmp` returned false),
    /// stopped at one of its bounds checks (ND_TCHECK: it goes on to the end of the packet) rather than in a read
    /// (GET: it gives up on the packet, and then dumps it from its first byte with -x, -X and -A).
    static func icmpCutIsChecked(_ isV6: Bool, at offset: Int, _ bytes: ByteView) -> Bool {
        guard let m = bytes.suffix(from: offset), let type = m.u8(0), m.u8(1) != nil else { return false }
        if !isV6 {
            switch type {
            case 3: return m.u8(1) == 3 && !m.has(17, 1)
            case 9, 11: return true
            case 14: return !m.has(16, 4)
            default: return false
            }
        }
        switch type {
        case 1: return m.u8(1) == 4
        case 4: return !m.has(32, 16)
        // Neighbor discovery: the fixed part is read, the options are checked.
        case 133, 147: return m.has(0, 8)
        case 134: return m.has(0, 16)
        case 135, 136: return m.has(0, 24)
        case 137: return m.has(0, 40)
        default: return false
        }
    }

    /// A first fragment whose ICMP header was cut before its type and code, which tcpdump's printer still reads.
    @inline(never)
    static func isCutICMP(_ d: DecodedPacket, _ proto: UInt8) -> Bool {
        guard case .truncated(.transport)? = d.problem, !d.isFragment else { return false }
        if case .ipv6 = d.network { return proto == 58 }
        return proto == 1
    }

    /// tcpdump 4.99's `icmp_print` without -v: "ICMP what, length N", where "what" names what the message says
    /// about the datagram it quotes ("127.0.0.1 udp port 5000 unreachable"). `m` is the message as far as it was
    /// captured and its IP datagram reaches; `length` its length per the IP header. tcpdump writes nothing of a
    /// message it runs out of bytes in (it prints " [|icmp]" instead): then this writes nothing and returns false.
    static func icmp4(_ m: ByteView, length: Int, into o: inout OutputBuffer) -> Bool {
        let start = o.count
        guard icmp4What(m, into: &o) else {
            o.rollBack(to: start)
            return false
        }
        o.append(", length ")
        o.decimal(length)
        return true
    }

    /// The quoted IP header of an ICMP error starts after the 8-byte ICMP header; its destination at 16.
    private enum Quoted4 {
        static let header = 8, protocolNumber = 8 + 9, destination = 8 + 16
    }

    private static func icmp4What(_ m: ByteView, into o: inout OutputBuffer) -> Bool {
        guard let type = m.u8(0), let code = m.u8(1) else { return false }
        o.append("ICMP ")
        switch type {
        case 0, 8:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append(type == 8 ? "echo request, id " : "echo reply, id ")
            o.decimal(id)
            o.append(", seq ")
            o.decimal(seq)
        case 3 where code == 3:
            // The quoted transport header follows the quoted IP header, whatever length that claims.
            guard m.has(Quoted4.protocolNumber, 1), let vhl = m.u8(Quoted4.header),
                let port = m.u16(Quoted4.header + Int(vhl & 0x0f) * 4 + 2), let proto = m.u8(Quoted4.protocolNumber),
                let dst = m.ipv4(Quoted4.destination)
            else { return false }
            o.address(dst)
            switch proto {
            case 6: o.append(" tcp port ")
            case 17: o.append(" udp port ")
            default:
                o.append(" protocol ")
                o.decimal(proto)
                o.append(" port ")
            }
            o.decimal(port)
            o.append(" unreachable")
        case 3 where code == 4:
            guard let mtu = m.u16(6), let dst = m.ipv4(Quoted4.destination) else { return false }
            o.address(dst)
            o.append(" unreachable - need to frag")
            if mtu != 0 {
                o.append(" (mtu ")
                o.decimal(mtu)
                o.byte(UInt8(ascii: ")"))
            }
        case 3 where code == 2:
            guard let dst = m.ipv4(Quoted4.destination), let proto = m.u8(Quoted4.protocolNumber) else { return false }
            o.address(dst)
            o.append(" protocol ")
            o.decimal(proto)
            o.append(" unreachable")
        case 3:
            guard let dst = m.ipv4(Quoted4.destination) else { return false }
            let (before, after): (StaticString, StaticString) = switch code {
            case 0: ("net ", " unreachable")
            case 1: ("host ", " unreachable")
            case 5: ("", " unreachable - source route failed")
            case 6: ("net ", " unreachable - unknown")
            case 7: ("host ", " unreachable - unknown")
            case 8: ("", " unreachable - source host isolated")
            case 9: ("net ", " unreachable - admin prohibited")
            case 10: ("host ", " unreachable - admin prohibited")
            case 11: ("net ", " unreachable - tos prohibited")
            case 12: ("host ", " unreachable - tos prohibited")
            case 13: ("host ", " unreachable - admin prohibited filter")
            case 14: ("host ", " unreachable - host precedence violation")
            case 15: ("host ", " unreachable - precedence cutoff")
            default: ("", " unreachable - #")
            }
            o.append(before)
            o.address(dst)
            o.append(after)
            if code > 15 { o.decimal(code) }
        case 5:
            guard let dst = m.ipv4(Quoted4.destination), let gateway = m.ipv4(4) else { return false }
            switch code {
            case 0, 1, 2, 3:
                o.append(code < 2 ? "redirect " : "redirect-tos ")
                o.address(dst)
                o.append(code % 2 == 0 ? " to net " : " to host ")
            default:
                o.append("redirect-#")
                o.decimal(code)
                o.byte(0x20)
                o.address(dst)
                o.append(" to ")
            }
            o.address(gateway)
        case 9:
            guard let count = m.u8(4), let size = m.u8(5), let lifetime = m.u16(6) else { return false }
            o.append("router advertisement lifetime ")
            if lifetime >= 3600 {
                o.decimal(lifetime / 3600)
                o.byte(UInt8(ascii: ":"))
            }
            if lifetime >= 60 {
                o.decimal(UInt64(lifetime % 3600 / 60), minimumWidth: lifetime >= 3600 ? 2 : 1)
                o.byte(UInt8(ascii: ":"))
                o.decimal(UInt64(lifetime % 60), minimumWidth: 2)
            } else {
                o.decimal(lifetime)
            }
            o.byte(0x20)
            o.decimal(count)
            o.byte(UInt8(ascii: ":"))
            guard size == 2 else {
                o.append(" [size ")
                o.decimal(size)
                o.byte(UInt8(ascii: "]"))
                break
            }
            for i in 0..<Int(count) {
                guard let address = m.ipv4(8 + 8 * i), let preference = m.u32(12 + 8 * i) else { return false }
                o.append(" {")
                o.address(address)
                o.byte(0x20)
                o.decimal(preference)
                o.byte(UInt8(ascii: "}"))
            }
        case 11:
            guard m.has(Quoted4.destination, 4) else { return false }
            switch code {
            case 0: o.append("time exceeded in-transit")
            case 1: o.append("ip reassembly time exceeded")
            default:
                o.append("time exceeded-#")
                o.decimal(code)
            }
        case 12:
            if code != 0 {
                o.append("parameter problem - code ")
                o.decimal(code)
            } else {
                guard let pointer = m.u8(4) else { return false }
                o.append("parameter problem - octet ")
                o.decimal(pointer)
            }
        case 13:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append("time stamp query id ")
            o.decimal(id)
            o.append(" seq ")
            o.decimal(seq)
        case 14:
            guard m.has(16, 4), let id = m.u16(4), let seq = m.u16(6), let originate = m.u32(8),
                let receive = m.u32(12), let transmit = m.u32(16)
            else { return false }
            o.append("time stamp reply id ")
            o.decimal(id)
            o.append(" seq ")
            o.decimal(seq)
            o.append(": org ")
            milliseconds(originate, into: &o)
            o.append(", recv ")
            milliseconds(receive, into: &o)
            o.append(", xmit ")
            milliseconds(transmit, into: &o)
        case 18:
            guard let mask = m.u32(8) else { return false }
            o.append("address mask is 0x")
            o.hex(UInt64(mask), width: 8)
        case 4: o.append("source quench")
        case 10: o.append("router solicitation")
        case 15: o.append("information request")
        case 16: o.append("information reply")
        case 17: o.append("address mask request")
        default:
            o.append("type-#")
            o.decimal(type)
        }
        return true
    }

    /// An ICMP timestamp (milliseconds since midnight UTC) as tcpdump's `icmp_tstamp_print`: HH:MM:SS.mmm.
    private static func milliseconds(_ t: UInt32, into o: inout OutputBuffer) {
        let seconds = t / 1000
        o.decimal(UInt64(seconds / 3600), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(seconds / 60 % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(seconds % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: "."))
        o.decimal(UInt64(t % 1000), minimumWidth: 3)
    }

    /// The quoted IPv6 header of an ICMPv6 error starts after the 8-byte ICMPv6 header.
    private enum Quoted6 {
        static let header = 8, nextHeader = 8 + 6, source = 8 + 8, destination = 8 + 24
    }

    /// tcpdump 4.99's `icmp6_print`: "ICMP6, what, length N" (with -v the length moves behind the name of
    /// neighbor discovery messages, whose options follow, and goes elsewhere). Unlike ICMP it prints as it reads:
    /// when it runs out of bytes the line so far stays and " [|icmp6]" follows; then this returns false. Router
    /// renumbering, node information and RPL messages get their name and length only (tcpdump says more).
    static func icmp6(_ m: ByteView, length: Int, verbosity: Int = 0, into o: inout OutputBuffer) -> Bool {
        if length == 0 {
            o.append("ICMP6, length 0 (invalid)")
            return true
        }
        guard let type = m.u8(0) else { return false }
        o.append("ICMP6, ")
        let name: StaticString? = switch type {
        case 1: "destination unreachable"
        case 2: "packet too big"
        case 3: "time exceeded in-transit"
        case 4: "parameter problem"
        case 128: "echo request"
        case 129: "echo reply"
        case 130: "multicast listener query"
        case 131: "multicast listener report"
        case 132: "multicast listener done"
        case 133: "router solicitation"
        case 134: "router advertisement"
        case 135: "neighbor solicitation"
        case 136: "neighbor advertisement"
        case 137: "redirect"
        case 138: "router renumbering"
        case 139: "who-are-you request"
        case 140: "who-are-you reply"
        case 141: "inverse neighbor solicitation"
        case 142: "inverse neighbor advertisement"
        case 143: "multicast listener report v2"
        case 144: "ha discovery request"
        case 145: "ha discovery reply"
        case 146: "mobile router solicitation"
        case 147: "mobile router advertisement"
        case 155: "RPL"
        case 200: "mtrace response"
        case 201: "mtrace message"
        default: nil
        }
        if let name {
            o.append(name)
        } else {
            o.append("unknown icmp6 type (")
            o.decimal(type)
            o.byte(UInt8(ascii: ")"))
        }
        if verbosity > 0, [133, 134, 135, 136, 137, 145, 147].contains(type) {
            o.append(", length ")
            o.decimal(length)
        }
        guard let code = m.u8(1) else { return false }
        switch type {
        case 1:
            switch code {
            case 0: o.append(", unreachable route")
            case 1: o.append(",  unreachable prohibited")  // tcpdump's table has the extra space
            case 2: o.append(", beyond scope")
            case 3: o.append(", unreachable address")
            case 4: o.append(", unreachable port")
            default:
                o.append(", unknown unreach code (")
                o.decimal(code)
                o.byte(UInt8(ascii: ")"))
            }
            switch code {
            case 0, 1, 3:
                guard let dst = m.ipv6(Quoted6.destination) else { return false }
                o.byte(0x20)
                o.address(dst)
            case 2:
                guard let dst = m.ipv6(Quoted6.destination), let src = m.ipv6(Quoted6.source) else { return false }
                o.byte(0x20)
                o.address(dst)
                o.append(", source address ")
                o.address(src)
            case 4:
                guard let (proto, at) = upperLayer6(m), let port = m.u16(at + 2),
                    let dst = m.ipv6(Quoted6.destination)
                else { return false }
                o.append(", ")
                o.address(dst)
                switch proto {
                case 6: o.append(" tcp port ")
                case 17: o.append(" udp port ")
                default:
                    o.append(" protocol ")
                    o.decimal(proto)
                    o.append(" port ")
                }
                o.decimal(port)
                if proto != 6 && proto != 17 { o.append(" unreachable") }
            default:
                // tcpdump shows the rest as hex, without the length (with -vv, neither).
                if verbosity <= 1 {
                    hexWords(m, into: &o)
                    return true
                }
            }
        case 2:
            guard let mtu = m.u32(4) else { return false }
            o.append(", mtu ")
            o.decimal(mtu)
        case 3:
            switch code {
            case 0:
                guard let dst = m.ipv6(Quoted6.destination) else { return false }
                o.append(" for ")
                o.address(dst)
            case 1: o.append(" (reassembly)")
            default:
                o.append(", unknown code (")
                o.decimal(code)
                o.byte(UInt8(ascii: ")"))
            }
        case 4:
            guard m.has(Quoted6.destination, 16) else { return false }
            let what: StaticString? = switch code {
            case 0: ", erroneous - octet "
            case 1: ", next header - octet "
            case 2: ", option - octet "
            case 3: ", incomplete header chain - octet "
            default: nil
            }
            if let what {
                guard let pointer = m.u32(4) else { return false }
                o.append(what)
                o.decimal(pointer)
            } else {
                o.append(", code-#")
                o.decimal(code)
            }
        case 128, 129:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append(", id ")
            o.decimal(id)
            o.append(", seq ")
            o.decimal(seq)
        case 130:
            if length == 24 {
                guard mld6(m, into: &o) else { return false }
            } else if length >= 28 {
                o.append(" v2")
                guard mldv2Query(m, length: length, verbosity: verbosity, into: &o) else { return false }
            } else {
                o.append(" unknown-version (len ")
                o.decimal(length)
                o.append(") ")
            }
        case 131, 132:
            guard mld6(m, into: &o) else { return false }
        case 135, 136:
            guard let target = m.ipv6(8) else { return false }
            o.append(type == 135 ? ", who has " : ", tgt is ")
            o.address(target)
            if verbosity > 0 {
                if type == 136 {
                    guard let flags = m.u32(4) else { return false }
                    o.append(", Flags [")
                    flagNames(flags, [(0x8000_0000, "router"), (0x4000_0000, "solicited"), (0x2000_0000, "override")],
                              into: &o)
                    o.byte(UInt8(ascii: "]"))
                }
                guard ndOptions(m, from: 24, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 137:
            guard let dst = m.ipv6(24) else { return false }
            o.append(", ")
            o.address(dst)
            guard let target = m.ipv6(8) else { return false }
            o.append(" to ")
            o.address(target)
            if verbosity > 0, !ndOptions(m, from: 40, length: length, verbosity: verbosity, into: &o) { return false }
        case 143:
            if length < 8 {
                o.append(" [invalid len ")
                o.decimal(length)
                o.byte(UInt8(ascii: "]"))
            } else {
                guard let records = m.u16(6) else { return false }
                o.append(", ")
                o.decimal(records)
                o.append(" group record(s)")
                if verbosity > 0, !mldv2Records(m, records, length: length, verbosity: verbosity, into: &o) {
                    return false
                }
            }
        case 144, 146:
            guard let id = m.u16(4) else { return false }
            o.append(", id 0x")
            o.hex(UInt64(id), width: 4)
        case 133:
            if verbosity > 0, !ndOptions(m, from: 8, length: length, verbosity: verbosity, into: &o) { return false }
        case 134:
            if verbosity > 0 {
                guard let hops = m.u8(4), let flags = m.u8(5), let lifetime = m.u16(6), let reachable = m.u32(8),
                    let retransmit = m.u32(12)
                else { return false }
                o.append("\n\thop limit ")
                o.decimal(hops)
                o.append(", Flags [")
                flagNames(UInt32(flags), [(0x80, "managed"), (0x40, "other stateful"), (0x20, "home agent"),
                                          (0x02, "ipv6 only")], into: &o)
                o.append("], pref ")
                o.append(routerPreference(flags))
                o.append(", router lifetime ")
                o.decimal(lifetime)
                o.append("s, reachable time ")
                o.decimal(reachable)
                o.append("ms, retrans timer ")
                o.decimal(retransmit)
                o.append("ms")
                guard ndOptions(m, from: 16, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 145:
            if verbosity > 0 {
                guard let id = m.u16(4) else { return false }
                o.append(", id 0x")
                o.hex(UInt64(id), width: 4)
                var at = 8
                while at < length {
                    guard let address = m.ipv6(at) else { return false }
                    o.append(", ")
                    o.address(address)
                    at += 16
                }
            }
        case 147:
            if verbosity > 0 {
                guard let id = m.u16(4), let flags = m.u16(6) else { return false }
                o.append(", id 0x")
                o.hex(UInt64(id), width: 4)
                if flags & 0xc000 != 0 { o.byte(0x20) }
                if flags & 0x8000 != 0 { o.byte(UInt8(ascii: "M")) }
                if flags & 0x4000 != 0 { o.byte(UInt8(ascii: "O")) }
                guard ndOptions(m, from: 8, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 138...142, 155:
            break
        default:
            o.append(", length ")
            o.decimal(length)
            if verbosity <= 1 { hexWords(m, into: &o) }
            return true
        }
        if verbosity == 0 {
            o.append(", length ")
            o.decimal(length)
        }
        return true
    }

    /// tcpdump's `mld6_print`: nothing when the 24-byte MLD message is not all there.
    private static func mld6(_ m: ByteView, into o: inout OutputBuffer) -> Bool {
        guard m.has(0, 24), let delay = m.u16(4), let address = m.ipv6(8) else { return true }
        o.append("max resp delay: ")
        o.decimal(delay)
        o.append(" addr: ")
        o.address(address)
        return true
    }

    /// tcpdump's `get_upperlayer`: follows the quoted datagram's extension headers (hop-by-hop, destination
    /// options, routing, a first fragment, AH) to TCP or UDP; the protocol and where its header starts, or nil.
    private static func upperLayer6(_ m: ByteView) -> (proto: UInt8, offset: Int)? {
        guard var next = m.u8(Quoted6.nextHeader) else { return nil }
        var offset = Quoted6.header
        var length = 40
        while offset < m.count {
            offset += length
            switch next {
            case 6, 17:
                return m.has(offset + 2, 2) ? (next, offset) : nil
            case 0, 60, 43:
                guard let n = m.u8(offset), let l = m.u8(offset + 1) else { return nil }
                next = n
                length = (Int(l) + 1) * 8
            case 44:
                guard let n = m.u8(offset), let fragment = m.u16(offset + 2), fragment & 0xfff8 == 0 else { return nil }
                next = n
                length = 8
            case 51:
                guard let n = m.u8(offset), let l = m.u8(offset + 1) else { return nil }
                next = n
                length = (Int(l) + 2) * 4
            default:
                return nil
            }
        }
        return nil
    }

}

extension UInt64 {
    var decimalDigits: Int {
        var n = 1
        var v = self
        while v >= 10 {
            v /= 10
            n += 1
        }
        return n
    }
}

extension ConversationReport {
    /// The digits glibc's printf("%.*f") writes for `v`, computed exactly: printf rounds the double's exact
    /// binary value to `decimals` places, ties to even. nil (use printf) for negative, huge or non-finite
    /// values and more than 9 places.
    static func exactFixed(_ v: Double, decimals: Int) -> (integer: UInt64, fraction: UInt64)? {
        guard v.isFinite, v >= 0, v < 1e9, decimals >= 0, decimals <= 9, v.sign == .plus else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        if v == 0 { return (0, 0) }
        // v = significand * 2^exponent exactly, with an integer significand below 2^53.
        let significand = v.significandBitPattern | (v.isNormal ? 1 << 52 : 0)
        let exponent = Int(v.exponent) - 52
        // v * scale = significand * scale * 2^exponent. v < 1e9 < 2^52 makes the exponent negative, and the
        // product is below 2^53 * 10^9 < 2^83, so a shift of 85 or more leaves less than half: zero.
        guard exponent < 0 else { return nil }
        let shift = -exponent
        guard shift < 85 else { return (0, 0) }
        let product = UInt128(significand) * UInt128(scale)
        var rounded = product >> UInt128(shift)
        let remainder = product & ((1 << UInt128(shift)) - 1)
        let half = UInt128(1) << UInt128(shift - 1)
        if remainder > half || (remainder == half && rounded & 1 == 1) { rounded += 1 }
        // v * scale < 1e18 fits.
        guard let r = UInt64(exactly: rounded) else { return nil }
        return (r / scale, r % scale)
    }
}

/// `tshark -q -z conv,tcp` / `conv,udp` tables, column for column.
public enum ConversationReport {
    /// `drain` is called whenever the buffer holds 64 KiB, so a table of a million rows needs no more memory.
    public static func write(_ table: ConversationTable, proto: UInt8, into o: inout OutputBuffer) {
        write(table, proto: proto, into: &o) { (_: inout OutputBuffer) throws(Never) in }
    }

    public static func write<E: Error>(
        _ table: ConversationTable, proto: UInt8, into o: inout OutputBuffer,
        drain: (inout OutputBuffer) throws(E) -> Void
    ) throws(E) {
        let rule = String(repeating: "=", count: 80)
        o.append(rule + "\n")
        o.append(proto == 6 ? "TCP Conversations\n" : "UDP Conversations\n")
        o.append("Filter:<No Filter>\n")
        o.append("                                                           |       <-      | |       ->      |"
                 + " |     Total     |    Relative    |   Duration   |\n")
        o.append("                                                           | Frames  Bytes | | Frames  Bytes |"
                 + " | Frames  Bytes |      Start     |              |\n")
        let origin = table.origin ?? Timestamp(seconds: 0, nanoseconds: 0)
        for row in table.sorted(proto: proto) {
            // tshark writes IPv6 endpoints without brackets: "fd00::6:32895".
            endpoint(row.a, into: &o)
            o.append(" <-> ")
            endpoint(row.b, into: &o)
            o.append("  ")
            // Wireshark's "<-" is B to A, "->" is A to B.
            counts(row.framesBtoA, row.bytesBtoA, into: &o)
            o.append("  ")
            counts(row.framesAtoB, row.bytesAtoB, into: &o)
            o.append("  ")
            counts(row.frames, row.bytes, into: &o)
            o.append("  ")
            let start = row.first.nanoseconds(since: origin)
            fixed(seconds: seconds(start), decimals: 9, width: 14, into: &o)
            // tshark subtracts the two relative times as doubles; so do we, to round alike.
            let stop = row.last.nanoseconds(since: origin)
            fixed(seconds: seconds(stop) - seconds(start), decimals: 4, width: 15, into: &o)
            o.byte(0x0a)
            if o.count >= 1 << 16 { try drain(&o) }
        }
        o.append(rule + "\n")
    }

    /// "address:port" left-aligned in 26 columns, written as digits (no string per row).
    static func endpoint(_ e: Endpoint, into o: inout OutputBuffer) {
        let start = o.count
        o.address(e.address)
        o.byte(UInt8(ascii: ":"))
        o.decimal(e.port)
        for _ in (o.count - start)..<max(26, o.count - start) { o.byte(0x20) }
    }

    /// "%6d %-9s": frames, then bytes the way Wireshark's `format_size` writes them.
    static func counts(_ frames: Int, _ bytes: Int, into o: inout OutputBuffer) {
        o.decimal(frames, rightAlignedIn: 6)
        o.byte(0x20)
        let start = o.count
        size(bytes, into: &o)
        for _ in (o.count - start)..<max(9, o.count - start) { o.byte(0x20) }
    }

    /// `size(_:)` written into the buffer.
    static func size(_ n: Int, into o: inout OutputBuffer) {
        if n >= 10 * 1_000_000_000_000 {
            o.decimal(n / 1_000_000_000_000)
            o.append(" TB")
        } else if n >= 10 * 1_000_000_000 {
            o.decimal(n / 1_000_000_000)
            o.append(" GB")
        } else if n >= 10 * 1_000_000 {
            o.decimal(n / 1_000_000)
            o.append(" MB")
        } else if n >= 10 * 1_000 {
            o.decimal(n / 1_000)
            o.append(" kB")
        } else {
            o.decimal(n)
            o.append(" bytes")
        }
    }

    /// Wireshark 4.0 `format_size(…, FORMAT_SIZE_UNIT_BYTES | FORMAT_SIZE_PREFIX_SI)`: "689 bytes", "12 kB", "3 MB".
    static func size(_ n: Int) -> String {
        let units: [(Int, String)] = [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"),
                                      (1_000, "kB")]
        for (scale, name) in units where n >= 10 * scale { return "\(n / scale) \(name)" }
        return "\(n) bytes"
    }

    /// Seconds with `decimals` places, right-aligned in `width`. Like tshark, the value goes
    /// through a double and C's printf, so halfway cases round the way tshark's do.
    static func seconds(_ ns: Int64) -> Double { Double(ns / 1_000_000_000) + Double(ns % 1_000_000_000) / 1e9 }

    static func fixed(seconds: Double, decimals: Int, width: Int, into o: inout OutputBuffer) {
        if let digits = exactFixed(seconds, decimals: decimals) {
            // Same digits as printf; right-align them the way "%*.*f" does.
            let length = digits.integer.decimalDigits + 1 + decimals
            for _ in length..<max(width, length) { o.byte(0x20) }
            o.decimal(digits.integer, minimumWidth: 1)
            o.byte(UInt8(ascii: "."))
            o.decimal(digits.fraction, minimumWidth: decimals)
            return
        }
        var buffer = [CChar](repeating: 0, count: 64)
        let format = "%\(width).\(decimals)f"
        _ = withVaList([seconds]) { args in
            buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, 64, format, args) }
        }
        o.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}
