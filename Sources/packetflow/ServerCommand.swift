import ArgumentParser
import Glibc
import PacketReading
import SocketLab
import Sockets

struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "The seed's TCP server: count each client, log its message, answer, close.",
        discussion: """
            Listens on 127.0.0.2:49152 with listen(2) as the seed does, and serves clients for ever: one log line \
            per client (access count, peer, message), a reply with the count, then close. A silent client is \
            dropped after --timeout without stalling the others. Ctrl-C stops it.

            Examples:
              packetflow server
              packetflow server --address 127.0.0.1 --port 50000 --backlog 8
            """
    )

    @Option(name: .long, help: "Address to listen on.")
    var address: String = "127.0.0.2"

    @Option(name: .long, help: "Port to listen on.")
    var port: UInt16 = 49152

    @Option(name: .long, help: "listen(2) backlog.")
    var backlog: Int32 = 2

    @Option(name: .long, help: "Size of the one recv(2) per client.")
    var bufsize: Int = 4096

    @Option(name: .long, help: "Seconds a client may take to send its message.")
    var timeout: Int = 5

    func validate() throws {
        guard backlog >= 0 else { throw ValidationError("--backlog must be 0 or more") }
        guard (1...(1 << 20)).contains(bufsize) else { throw ValidationError("--bufsize must be 1 to 1048576") }
        guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
    }

    func run() throws {
        let listenAddress: SocketAddress
        do {
            listenAddress = try SocketAddress(parsing: address, defaultPort: port)
        } catch {
            throw CLIError("--address: \(error)")
        }
        let config = SeedServer.Configuration(
            address: SocketAddress(ip: listenAddress.ip, port: port), backlog: backlog, receiveBufferSize: bufsize,
            clientTimeout: .seconds(timeout))
        let server: SeedServer
        do {
            server = try SeedServer(configuration: config) { access in
                // The reader of stdout went away (`| head`): nothing to clean up, stop like before.
                do { try emit(access.description + "\n") } catch { Glibc.exit(0) }
            }
        } catch {
            throw CLIError(error.description)
        }
        stopOnSignals(writingTo: server.stopDescriptor)
        warn("listening on \(server.address) (backlog \(backlog)); Ctrl-C to stop")
        let outcome = Result { () throws(SeedServerError) in try server.run() }
        // The pipe closes with the server: a later signal must not write to a descriptor reused by then.
        stopOnSignals(writingTo: -1)
        if case .failure(let error) = outcome { throw CLIError(error.description) }
        warn("stopped after \(server.accessCount) clients")
    }
}
