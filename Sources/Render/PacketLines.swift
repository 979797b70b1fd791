import Glibc
import PacketWire
import Synchronization
import Timeline

/// One line per packet in the manner of `tcpdump -nn`: time of day (UTC, microseconds), addresses and ports,
/// flags in tcpdump's letters, seq/ack (relative, as Wireshark numbers them, or absolute with
/// `absoluteSequence`), window, options in wire order, payload length. TCP analysis, truncation and
/// malformed headers follow in brackets. With `absoluteSequence` a TCP/UDP line over Ethernet is byte for byte
/// what `TZ=UTC tcpdump -nn -S` prints.
///
/// Everything is written into an `OutputBuffer`; nothing allocates for an IPv4 TCP or UDP packet.
public struct PacketText {
    public var absoluteSequence = false
    /// Payload as text after the line (UTF-8 as is, Japanese included; control and invalid bytes escaped).
    public var payload = false
    /// Hex and ASCII dump of the captured bytes after the line (`tcpdump -XX`).
    public var hex = false

    public init(absoluteSequence: Bool = false, payload: Bool = false, hex: Bool = false) {
        self.absoluteSequence = absoluteSequence
        self.payload = payload
        self.hex = hex
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
        let e = Trailer(track: t, info: info, decoded: d)
        if case .invalidRecord = e.problem, let items = info.invalidLengths {
            // tcpdump believes nothing else of such a record: no time, no decode, no dump.
            o.append("[Invalid header: ")
            for (i, item) in items.enumerated() {
                if i > 0 { o.append(", ") }
                o.append(item)
            }
            o.append("]\n")
            return
        }
        time(info.timestamp, into: &o)
        o.byte(0x20)
        if case .unsupportedLink = e.problem {
            // tcpdump's line for a link type it has no printer for: the word, then every captured byte.
            o.append("UNSUPPORTED\n")
            if payload, d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, d.capturedPayloadLength) {
                Self.payloadText(p, into: &o)
            }
            Self.hexDump(bytes, into: &o)
            return
        }
        if case .cooked(2, let packetType, _, let index?) = d.link { Self.cookedPrefix(packetType, index, into: &o) }
        switch d.network {
        case .ipv4:
            o.append("IP ")
            if case .lengthBeyondPacket(let missing, _) = e.problem {
                o.append("truncated-ip - ")
                o.decimal(missing)
                o.append(" bytes missing! ")
            }
        case .ipv6:
            o.append("IP6 ")
            if case .lengthBeyondPacket(let missing, _) = e.problem {
                // tcpdump's IPv6 mark has no space before the addresses.
                o.append("truncated-ip6 - ")
                o.decimal(missing)
                o.append(" bytes missing!")
            }
        case .arp(let arp):
            o.append("ARP, ")
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
            trailer(e, into: &o)
            extras(d, bytes: bytes, into: &o)
            return
        case .unknown(let type):
            o.append("ethertype 0x")
            o.hex(UInt64(type), width: 4)
            o.append(", length ")
            o.decimal(bytes.count)
            trailer(e, into: &o)
            extras(d, bytes: bytes, into: &o)
            return
        case nil:
            o.append("[link layer only]")
            trailer(e, into: &o)
            extras(d, bytes: bytes, into: &o)
            return
        }
        let src = d.source!
        let dst = d.destination!
        switch d.transport {
        case .tcp(let tcp):
            endpoints(src, tcp.sourcePort, dst, tcp.destinationPort, into: &o)
            tcpBody(t, tcp, d, bytes: bytes, into: &o)
        case .udp(let udp):
            endpoints(src, udp.sourcePort, dst, udp.destinationPort, into: &o)
            o.append("UDP, length ")
            o.decimal(d.payloadLength)
        case .icmp(let icmp):
            o.address(src)
            o.append(" > ")
            o.address(dst)
            o.append(icmp.isV6 ? ": ICMP6, " : ": ICMP ")
            o.append(icmp.summary)
            if let echo = icmp.echo {
                o.append(", id ")
                o.decimal(echo.identifier)
                o.append(", seq ")
                o.decimal(echo.sequence)
            }
            o.append(", length ")
            o.decimal(d.payloadLength + 8)
        case .unknown(let proto):
            o.address(src)
            o.append(" > ")
            o.address(dst)
            o.append(": ip-proto-")
            o.decimal(proto)
            o.byte(0x20)
            o.decimal(d.payloadLength)
        case nil:
            o.address(src)
            o.append(" > ")
            o.address(dst)
            o.byte(UInt8(ascii: ":"))
        }
        trailer(e, into: &o)
        extras(d, bytes: bytes, into: &o)
    }

    /// HH:MM:SS.uuuuuu of the UTC day (tcpdump's default, truncated to microseconds as tcpdump does).
    func time(_ t: Timestamp, into o: inout OutputBuffer) {
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

    func tcpBody(_ t: PacketTrack, _ tcp: TCPHeader, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer)
    {
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
        let relative = !absoluteSequence && t.hasStream
        let seq = relative ? t.relativeSeq : tcp.sequenceNumber
        let ack = relative ? t.relativeAck : tcp.acknowledgmentNumber
        let length = d.payloadLength
        if length > 0 || !f.isDisjoint(with: [.syn, .fin, .rst]) {
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

        init(track: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket) {
            analysis = track.analysis
            problem = d.problem(capturedAs: info)
            truncated = PacketEventBuilder.isTruncated(info, d)
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
        case .lengthBeyondPacket?:
            // Marked after "IP " as tcpdump marks it; what the decoder then missed is only its consequence.
            if e.truncated { o.append(" [truncated]") }
        case let problem?:
            o.append(" [")
            o.append(problem.description)
            o.byte(UInt8(ascii: "]"))
        case nil:
            if e.truncated { o.append(" [truncated]") }
        }
        o.byte(0x0a)
    }

    func extras(_ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        if payload, d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, d.capturedPayloadLength) {
            Self.payloadText(p, into: &o)
        }
        if hex { Self.hexDump(bytes, into: &o) }
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
    public static func write(_ table: ConversationTable, proto: UInt8, into o: inout OutputBuffer,
                             drain: (inout OutputBuffer) -> Void = { _ in }) {
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
            if o.count >= 1 << 16 { drain(&o) }
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
