import PacketWire
import Sockets
import SystemCalls
import Testing

@Suite struct AddressTests {
    @Test func parsesAndPrintsIPv4WithPort() throws {
        let address = try SocketAddress(parsing: "127.0.0.2:49152")
        #expect(address.ip == .v4(0x7F00_0002))
        #expect(address.port == 49152)
        #expect(address.description == "127.0.0.2:49152")
        #expect(address.ip.bytes == [127, 0, 0, 2])
        #expect(try SocketAddress(parsing: address.description) == address)
    }

    @Test func parsesAndPrintsIPv6WithPort() throws {
        let address = try SocketAddress(parsing: "[::1]:49152")
        #expect(address.ip == .loopbackV6)
        #expect(address.port == 49152)
        #expect(address.description == "[::1]:49152")
        #expect(try SocketAddress(parsing: address.description) == address)
    }

    @Test func printsIPv6InRFC5952Form() throws {
        let long = try SocketAddress(parsing: "[2001:0DB8:0000:0000:0000:0000:0000:0001]:80")
        #expect(long.description == "[2001:db8::1]:80")
        // A single zero group is not shortened to "::" (RFC 5952 4.2.2).
        #expect(try SocketAddress(parsing: "[2001:db8:0:1:1:1:1:1]:1").description == "[2001:db8:0:1:1:1:1:1]:1")
        #expect(try SocketAddress(parsing: "[::ffff:127.0.0.1]:1").description == "[::ffff:127.0.0.1]:1")
        #expect(IPAddress("fe80::0001:0000")?.description == "fe80::1:0")
    }

    @Test func bareAddressesTakeTheDefaultPort() throws {
        #expect(try SocketAddress(parsing: "127.0.0.2", defaultPort: 49152).description == "127.0.0.2:49152")
        #expect(try SocketAddress(parsing: "::1", defaultPort: 7).description == "[::1]:7")
        #expect(try SocketAddress(parsing: "[::1]", defaultPort: 7).description == "[::1]:7")
        #expect(try SocketAddress(parsing: "127.0.0.2:80", defaultPort: 49152).port == 80)
    }

    @Test(arguments: [
        ("127.0.0.2", SocketAddress.ParseError.missingPort("127.0.0.2")),
        ("127.0.0.256:1", .invalidAddress("127.0.0.256:1")),
        ("localhost:80", .invalidAddress("localhost:80")),
        ("127.0.0.1:70000", .invalidPort("70000")),
        ("127.0.0.1:", .invalidPort("")),
        ("127.0.0.1:+80", .invalidPort("+80")),
        ("[::1]x", .invalidAddress("[::1]x")),
        ("[::1", .invalidAddress("[::1")),
        ("[127.0.0.1]:80", .invalidAddress("[127.0.0.1]:80")),
        ("fe80::1%eth0", .invalidAddress("fe80::1%eth0")),
        ("", .invalidAddress("")),
    ])
    func rejectsMalformedText(text: String, expected: SocketAddress.ParseError) {
        #expect(throws: expected) { try SocketAddress(parsing: text) }
    }

    @Test func parseErrorsSayWhatWasExpected() {
        #expect(SocketAddress.ParseError.missingPort("127.0.0.2").description.contains("127.0.0.2:49152"))
    }

    @Test(arguments: ["127.0.0.2:49152", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:1", "[2001:db8::42]:443"])
    func sockaddrStorageRoundTrip(text: String) throws {
        let address = try SocketAddress(parsing: text)
        #expect(SocketAddress(storage: address.storage) == address)
        #expect(Int32(address.storage.ss_family) == address.family)
    }

    @Test func ipAddressBytesRoundTrip() {
        let v6 = IPAddress("2001:db8::ff00:42:8329")!
        #expect(v6.bytes.count == 16)
        #expect(IPAddress(bytes: v6.bytes) == v6)
        #expect(IPAddress(bytes: [10, 0, 0, 1]) == IPAddress("10.0.0.1"))
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress("1.2.3") == nil)
    }
}

@Suite struct ErrnoAndStateTests {
    @Test func errnoNamesAndMessages() {
        #expect(Errno.connectionRefused.name == "ECONNREFUSED")
        #expect(Errno.connectionRefused.message == "Connection refused")
        #expect(Errno.connectionRefused.description == "ECONNREFUSED (Connection refused)")
        #expect(Errno.addressInUse.name == "EADDRINUSE")
        #expect(Errno.timedOut.name == "ETIMEDOUT")
        #expect(Errno.wouldBlock.name == "EAGAIN")
        #expect(Errno.brokenPipe.name == "EPIPE")
        #expect(Errno.nowInProgress.name == "EINPROGRESS")
        #expect(Errno(rawValue: 9999).name == "E9999")
        #expect(Errno(rawValue: 9999).message.contains("9999"))
    }

    @Test func tcpStateNumbersAndNames() {
        #expect(TCPState(rawValue: 1) == .established)
        #expect(TCPState(rawValue: 4).name == "FIN_WAIT1")
        #expect(TCPState(rawValue: 6).name == "TIME_WAIT")
        #expect(TCPState(rawValue: 7).name == "CLOSED")
        #expect(TCPState(rawValue: 8).name == "CLOSE_WAIT")
        #expect(TCPState(rawValue: 9).name == "LAST_ACK")
        #expect(TCPState(rawValue: 10) == .listen)
        #expect(TCPState(rawValue: 12).name == "NEW_SYN_RECV")
        #expect(TCPState(rawValue: 99) == .unknown(99))
        for raw in UInt8(0)...20 {
            #expect(TCPState(rawValue: raw).rawValue == raw)
        }
    }
}
