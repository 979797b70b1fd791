import Glibc
import PacketWire
import Testing
import Timeline

@testable import SyscallTrace

/// The syscall decoder on its own: registers and a program's memory in, the arguments trace shows out.
@Suite struct SyscallDecoderTests {
    /// Memory as a few byte strings at fixed addresses; anything else cannot be read.
    struct Memory: TraceeMemory {
        var bytes: [UInt64: [UInt8]]
        func read(at address: UInt64, count: Int) -> [UInt8] { Array((bytes[address] ?? []).prefix(count)) }
    }

    static func render(_ args: [(String, ArgumentValue)]) -> String {
        args.map { name, value in
            if case .bytes(let count, let preview) = value { return "\(name)=\"\(preview)\"(\(count))" }
            return "\(name)=\(value)"
        }.joined(separator: ", ")
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    static let zeros: [UInt8] = Array(repeating: 0, count: 15)
    static let sockaddrs: [([UInt8], String)] = [
        // sockaddr_in 127.0.0.1:80
        (le16(2) + [0, 80, 127, 0, 0, 1] + zeros.prefix(8), "127.0.0.1:80"),
        // sockaddr_in6 [::1]:443
        (le16(10) + [1, 0xbb, 0, 0, 0, 0] + zeros + [1, 0, 0, 0, 0], "[::1]:443"),
        (le16(1) + Array("/var/run/nscd/socket".utf8) + [0], "/var/run/nscd/socket"),
        (le16(1) + [0] + Array("name".utf8), "@name"),
        (le16(1), "(unnamed)"),
        (le16(16) + zeros.prefix(10), "family 16"),
    ]

    @Test(arguments: sockaddrs)
    func addressesAreShownAsTraceShowsThem(sockaddr: [UInt8], shown: String) {
        let memory = Memory(bytes: [0x5000: sockaddr])
        let r = SyscallRegisters.entry(.connect, 3, 0x5000, UInt64(sockaddr.count))
        let (_, text) = SyscallDecoder.address(.connect, r, memory)
        #expect(text == shown)
        let args = SyscallDecoder.arguments(.connect, entry: r, result: 0, fd: 3, addressText: text, made: [], memory)
        #expect(Self.render(args) == "fd=3, addr=\(shown)")
    }

    @Test func anUnreadableAddressIsAQuestionMark() {
        let r = SyscallRegisters.entry(.bind, 3, 0x6000, 16)
        let (address, text) = SyscallDecoder.address(.bind, r, Memory(bytes: [:]))
        #expect(address == nil && text == nil)
        let args = SyscallDecoder.arguments(
            .bind, entry: r, result: -14, fd: 3, addressText: text, made: [], Memory(bytes: [:]))
        #expect(Self.render(args) == "fd=3, addr=?")
    }

    @Test func socketOptionsAreNamedWithTheirValues() {
        let memory = Memory(bytes: [
            0x100: Self.le32(1) + Self.le32(5), 0x200: Array("cubic".utf8) + [0, 0], 0x300: Self.le32(1),
            0x400: Self.le32(4),
        ])
        let linger = SyscallRegisters.entry(.setsockopt, 3, UInt64(SOL_SOCKET), UInt64(SO_LINGER), 0x100, 8)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .setsockopt, entry: linger, result: 0, fd: 3, addressText: nil,
                    made: [], memory))
                == "fd=3, level=SOL_SOCKET, option=SO_LINGER, l_onoff=1, l_linger=5")
        let congestion = SyscallRegisters.entry(.setsockopt, 3, 6, 13, 0x200, 7)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .setsockopt, entry: congestion, result: 0, fd: 3,
                    addressText: nil, made: [], memory))
                == "fd=3, level=SOL_TCP, option=TCP_CONGESTION, value=cubic")
        // getsockopt returns the length through a pointer.
        let nodelay = SyscallRegisters.entry(.getsockopt, 3, 6, 1, 0x300, 0x400)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .getsockopt, entry: nodelay, result: 0, fd: 3, addressText: nil,
                    made: [], memory))
                == "fd=3, level=SOL_TCP, option=TCP_NODELAY, value=1")
        // A failed call's value is not read.
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .getsockopt, entry: nodelay, result: -22, fd: 3,
                    addressText: nil, made: [], memory))
                == "fd=3, level=SOL_TCP, option=TCP_NODELAY")
    }

    @Test func socketpairShowsTheTwoDescriptorsItWrote() {
        let r = SyscallRegisters.entry(.socketpair, 1, 1, 0, 0x700)
        let memory = Memory(bytes: [0x700: Self.le32(5) + Self.le32(6)])
        let pair = SyscallDecoder.socketPair(r, ok: true, memory)
        #expect(pair == [5, 6])
        #expect(SyscallDecoder.socketPair(r, ok: false, memory) == [-1, -1])
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .socketpair, entry: r, result: 0, fd: nil, addressText: nil,
                    made: pair, memory))
                == "domain=AF_UNIX, sv=[5, 6]")
    }

    /// Register values are the program's: a size above Int.max (a failed write of 2^64-1 bytes) is shown, not a trap.
    @Test func registersAboveIntMaxDoNotTrap() {
        let memory = Memory(bytes: [:])
        let write = SyscallRegisters.entry(.write, 4, 0x900, UInt64.max)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .write, entry: write, result: -14, fd: 4, addressText: nil,
                    made: [], memory))
                == "fd=4, data=\"\"(\(Int.max))")
        let recv = SyscallRegisters.entry(.recvfrom, 4, 0x900, UInt64.max)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .recvfrom, entry: recv, result: -14, fd: 4, addressText: nil,
                    made: [], memory))
                == "fd=4, size=\(Int.max)")
        let connect = SyscallRegisters.entry(.connect, 4, 0x900, UInt64.max)
        #expect(SyscallDecoder.address(.connect, connect, memory).1 == nil)
    }

    @Test func dataIsPreviewedEscapedAndCountedFromTheResult() {
        let memory = Memory(bytes: [0x800: Array("hi\n".utf8) + [0xff, 0x41]])
        let write = SyscallRegisters.entry(.write, 4, 0x800, 100)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .write, entry: write, result: 5, fd: 4, addressText: nil,
                    made: [], memory))
                == "fd=4, data=\"hi\\n\\xffA\"(5)")
        let recv = SyscallRegisters.entry(.recvfrom, 4, 0x800, 64)
        #expect(
            Self.render(
                SyscallDecoder.arguments(
                    .recvfrom, entry: recv, result: 2, fd: 4, addressText: nil,
                    made: [], memory))
                == "fd=4, size=64, data=\"hi\"(2)")
    }
}
