import PacketWire

/// What a line's style decides. `PlainLine` answers with constants, so the plain line (`read` without tcpdump's
/// flags) compiles to the code it had before the flags existed; `TcpdumpLine` answers from `TcpdumpFlags`.
protocol LineStyle {
    var verbosity: Int { get }
    var linkHeader: Bool { get }
    var quick: Bool { get }
    /// The line is the datagram an ICMP error quotes (`-v`): no number, time, link header or trailer.
    var isQuoted: Bool { get }
    /// The packet number (`-#`), the first thing on a line.
    mutating func number(into o: inout OutputBuffer)
    /// The time and the space after it.
    mutating func time(_ t: Timestamp, into o: inout OutputBuffer)
}

struct PlainLine: LineStyle {
    @inline(__always) var verbosity: Int { 0 }
    @inline(__always) var linkHeader: Bool { false }
    @inline(__always) var quick: Bool { false }
    @inline(__always) var isQuoted: Bool { false }
    @inline(__always) func number(into o: inout OutputBuffer) {}
    @inline(__always) func time(_ t: Timestamp, into o: inout OutputBuffer) {
        PacketText.clock(t, into: &o)
        o.byte(0x20)
    }
}
