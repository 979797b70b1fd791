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
        o.padded(cookedDirection(packetType), 4)
    }

    /// if_indextoname(3) asks the kernel through a socket: once per index, then from memory.
    static let interfaceNames = Mutex<[UInt32: String]>([:])

    static func interfaceName(_ index: UInt32) -> String {
        if let name = interfaceNames.withLock({ $0[index] }) { return name }
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        let name =
            if_indextoname(index, &buffer) != nil
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
                if payload, d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, d.capturedPayloadLength) {
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
            if !Self.icmp(
                icmp.isV6, at: d.payloadOffset - 8, length: icmp.length, bytes, verbosity: s.verbosity,
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
            if !Self.icmp(
                proto == 58, at: d.payloadOffset, length: d.payloadLength, bytes, verbosity: s.verbosity,
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
        if tcp.headerLength > 20,
            let optionBytes = bytes.slice(
                d.payloadOffset - tcp.headerLength + 20,
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
