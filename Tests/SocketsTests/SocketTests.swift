import Foundation
import PacketWire
import Sockets
import SystemCalls
import Testing

/// A listener on 127.0.0.1 with a kernel-chosen port, so tests can run in parallel.
func makeListener(backlog: Int32 = 8) throws -> (Socket, SocketAddress) {
    let listener = try Socket(family: .ipv4, type: .stream)
    try listener.bind(to: SocketAddress(ip: .loopbackV4, port: 0))
    try listener.listen(backlog: backlog)
    return (listener, try listener.localAddress)
}

/// A connected TCP pair over loopback: (client, server side), plus the listener kept alive.
func connectedPair() throws -> (client: Socket, server: Socket, listener: Socket) {
    let (listener, address) = try makeListener()
    let client = try Socket(family: .ipv4, type: .stream)
    try client.connect(to: address, timeout: .seconds(2))
    let (server, _) = try listener.accept()
    return (client, server, listener)
}

/// Polls `socket`'s TCP state until it is `expected` (state changes follow packets, which take a moment).
func waitForState(_ socket: Socket, _ expected: TCPState, within: Duration = .seconds(3)) -> TCPState? {
    let deadline = ContinuousClock.now + within
    var state = socket.tcpState()
    while state != expected && ContinuousClock.now < deadline {
        usleep(5_000)
        state = socket.tcpState()
    }
    return state
}

@Suite struct SocketTests {
    @Test func connectToAPortNobodyListensOnIsRefused() throws {
        // Bound but not listening: the kernel answers the SYN with a RST.
        let bound = try Socket(family: .ipv4, type: .stream)
        try bound.bind(to: SocketAddress(ip: .loopbackV4, port: 0))
        let address = try bound.localAddress

        for timeout in [nil, Duration.seconds(2)] {
            let client = try Socket(family: .ipv4, type: .stream)
            let error = #expect(throws: Errno.self) { try client.connect(to: address, timeout: timeout) }
            #expect(error == .connectionRefused)
            #expect(error?.name == "ECONNREFUSED")
            #expect(try client.isNonBlocking() == false)
        }
    }

    @Test func connectTimesOutWhenTheAcceptQueueIsFull() throws {
        // Linux drops SYNs while the accept queue is full (backlog 0 holds one connection), so the next
        // handshake never completes: a loopback way to see ETIMEDOUT.
        let (listener, address) = try makeListener(backlog: 0)
        _ = listener
        var held: [Socket] = []
        var timedOut: Errno?
        for _ in 0..<8 {
            let client = try Socket(family: .ipv4, type: .stream)
            do {
                try client.connect(to: address, timeout: .milliseconds(300))
                held.append(client)
            } catch {
                timedOut = error
                break
            }
        }
        #expect(timedOut == .timedOut)
        #expect(timedOut?.name == "ETIMEDOUT")
        #expect(!held.isEmpty)
    }

    @Test func addressesOfBothEnds() throws {
        let (client, server, listener) = try connectedPair()
        #expect(try client.remoteAddress == listener.localAddress)
        #expect(try server.remoteAddress == client.localAddress)
        #expect(try server.localAddress == listener.localAddress)
        let loneSocket = try Socket(family: .ipv4, type: .stream)
        #expect(throws: Errno.notConnected) { try loneSocket.remoteAddress }
    }

    @Test func dataBothWays() throws {
        let (client, server, _) = try connectedPair()
        try client.setNoDelay()
        try client.sendAll(Array("こんにちは".utf8))
        let received = try server.recv(max: 4096)
        #expect(String(decoding: received, as: UTF8.self) == "こんにちは")
        #expect(try server.send([1, 2, 3]) == 3)
        #expect(try client.recv(max: 2) == [1, 2])
        #expect(try client.recv(max: 10, flags: .peek) == [3])
        #expect(try client.recv(max: 10) == [3])
        #expect(throws: Errno.wouldBlock) { try client.recv(max: 10, flags: .dontWait) }
    }

    @Test func tcpStatesThroughAnOrderlyClose() throws {
        let (listener, address) = try makeListener()
        #expect(listener.tcpState() == .listen)
        #expect(listener.tcpState()?.name == "LISTEN")

        let fresh = try Socket(family: .ipv4, type: .stream)
        #expect(fresh.tcpState() == .closed)

        let client = try Socket(family: .ipv4, type: .stream)
        try client.connect(to: address, timeout: .seconds(2))
        let (server, _) = try listener.accept()
        #expect(client.tcpState() == .established)
        #expect(server.tcpState()?.name == "ESTABLISHED")

        // The client sends its FIN (shutdown keeps the descriptor, so its state stays readable); once the
        // server's ACK arrives the client waits in FIN_WAIT2 and the server in CLOSE_WAIT.
        try client.shutdown(.write)
        #expect(waitForState(server, .closeWait)?.name == "CLOSE_WAIT")
        #expect(waitForState(client, .finWait2)?.name == "FIN_WAIT2")
        #expect(try server.recv(max: 10) == [], "the FIN reads as end of stream")

        // The server closes too: the client's connection moves to a kernel-only TIME_WAIT entry, and the
        // socket the descriptor still names is left CLOSED.
        try server.close()
        #expect(waitForState(client, .closed)?.name == "CLOSED")
    }

    @Test func abortiveCloseResetsThePeer() throws {
        let (client, server, _) = try connectedPair()
        try client.setLinger(seconds: 0)
        try client.close()
        let error = #expect(throws: Errno.self) { try server.recv(max: 4096) }
        #expect(error == .connectionReset)
        #expect(error?.name == "ECONNRESET")
        #expect(server.tcpState() == .closed)
    }

    @Test func writingToAResetConnectionIsEPIPENotSIGPIPE() throws {
        let (client, server, _) = try connectedPair()
        try client.setLinger(seconds: 0)
        try client.close()
        #expect(waitForState(server, .closed) == .closed)
        // The first call reports the reset itself; from then on the socket is a broken pipe.
        var errors: [Errno] = []
        for _ in 0..<3 {
            do { try server.sendAll([0x41]) } catch { errors.append(error) }
        }
        #expect(errors.count == 3)
        #expect(errors.last == .brokenPipe)
        #expect(errors.allSatisfy { $0 == .brokenPipe || $0 == .connectionReset })
    }

    @Test func receiveTimeoutEndsABlockingRecv() throws {
        let (client, server, _) = try connectedPair()
        defer { withExtendedLifetime(server) {} }  // an open peer that stays silent
        try client.setReceiveTimeout(.milliseconds(100))
        try client.setSendTimeout(.seconds(1))
        let start = ContinuousClock.now
        #expect(throws: Errno.wouldBlock) { try client.recv(max: 10) }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(90) && elapsed < .seconds(2))
    }

    @Test func optionsAreAccepted() throws {
        let (client, _, _) = try connectedPair()
        try client.setKeepAlive(idle: 60, interval: 5, count: 3)
        try client.setKeepAlive(false)
        try client.setNoDelay(false)
        try client.setLinger(seconds: 2)
        try client.setLinger(seconds: nil)
        try client.setReuseAddress()
        #expect(try client.pendingError() == nil)
        #expect(throws: Errno.invalidArgument) { try client.setKeepAlive(idle: -1) }
    }

    @Test func closeIsIdempotentAndLaterCallsFailWithEBADF() throws {
        let socket = try Socket(family: .ipv4, type: .stream)
        #expect(socket.fileDescriptor >= 0)
        try socket.close()
        try socket.close()
        #expect(!socket.isOpen)
        #expect(socket.fileDescriptor == -1)
        #expect(socket.tcpState() == nil)
        let error = #expect(throws: Errno.self) { try socket.listen(backlog: 1) }
        #expect(error?.name == "EBADF")
    }

    @Test func bindingAnAddressInUseFails() throws {
        let (listener, address) = try makeListener()
        defer { withExtendedLifetime(listener) {} }
        let second = try Socket(family: .ipv4, type: .stream)
        try second.setReuseAddress()
        #expect(throws: Errno.addressInUse) { try second.bind(to: address) }
    }

    @Test func udpDatagramsCarryTheirSender() throws {
        let receiver = try Socket(family: .ipv4, type: .datagram)
        try receiver.bind(to: SocketAddress(ip: .loopbackV4, port: 0))
        #expect(receiver.tcpState() == nil)
        let sender = try Socket(family: .ipv4, type: .datagram)
        try sender.bind(to: SocketAddress(ip: .loopbackV4, port: 0))
        #expect(try sender.sendTo(Array("ping".utf8), to: receiver.localAddress) == 4)
        let (bytes, from) = try receiver.recvFrom(max: 2)
        #expect(bytes == Array("pi".utf8), "a datagram is cut to the buffer, the rest is dropped")
        #expect(try from == sender.localAddress)
    }

    @Test func ipv6Loopback() throws {
        let listener = try Socket(family: .ipv6, type: .stream)
        let loopback = SocketAddress(ip: .loopbackV6, port: 0)
        let bindError: Errno? = Result { () throws(Errno) in try listener.bind(to: loopback) }.failure
        if let bindError {
            // No IPv6 on this machine's loopback: nothing to test, anything else is a failure.
            #expect(bindError == .addressNotAvailable || bindError == .addressFamilyNotSupported)
            return
        }
        try listener.listen(backlog: 1)
        let address = try listener.localAddress
        let client = try Socket(family: .ipv6, type: .stream)
        try client.connect(to: address, timeout: .seconds(2))
        let (_, peer) = try listener.accept()
        let clientAddress = try client.localAddress
        #expect(peer.description.hasPrefix("[::1]:"))
        #expect(peer == clientAddress)
    }

    @Test func pollAndWakePipe() throws {
        let pipe = try WakePipe()
        let request = Poll.Request(fileDescriptor: pipe.readDescriptor, events: .readable)
        #expect(try Poll.wait([request], timeout: .milliseconds(20)) == [[]])
        pipe.wake()
        pipe.wake()
        #expect(try Poll.wait([request], timeout: .seconds(1))[0].contains(.readable))
        #expect(pipe.drain())
        #expect(!pipe.drain())
        #expect(try Poll.wait([request], timeout: .zero) == [[]])
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
