import ArgumentParser
import Glibc
import PacketReading
import SocketLab
import Sockets

struct ClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "The seed's TCP client: connect, send a message as UTF-8, print the reply, close.",
        discussion: """
            Without MESSAGE it asks for one on the terminal, like the seed's input().

            Examples:
              packetflow client 'こんにちは'
              packetflow client --bind 127.0.0.1:61867 hello      (the seed's source address)
              echo hello | packetflow client
            """
    )

    @Argument(help: "The message to send (asked for when omitted).")
    var message: String?

    @Option(name: .long, help: "The server's address and port.")
    var server: String = "127.0.0.2:49152"

    @Option(name: .long, help: "Bind the client to this address[:port] before connecting.")
    var bind: String?

    @Option(name: .long, help: "Seconds to wait for the connection and for the reply.")
    var timeout: Int = 5

    @Option(name: .long, help: "Size of the one recv(2) for the reply.")
    var bufsize: Int = 4096

    func validate() throws {
        guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
        guard (1...(1 << 20)).contains(bufsize) else { throw ValidationError("--bufsize must be 1 to 1048576") }
    }

    func run() throws {
        let serverAddress: SocketAddress
        var bindAddress: SocketAddress?
        do {
            serverAddress = try SocketAddress(parsing: server, defaultPort: 49152)
            if let bind { bindAddress = try SocketAddress(parsing: bind, defaultPort: 0) }
        } catch {
            throw CLIError("\(error)")
        }
        var text = message
        if text == nil {
            if isatty(STDIN_FILENO) == 1 { warn("message to send: ") }
            text = readLine(strippingNewline: true)
        }
        guard let text else { throw CLIError("no message: give one as an argument or on standard input") }
        let client = SeedClient(
            configuration: .init(
                server: serverAddress, bindAddress: bindAddress, connectTimeout: .seconds(timeout),
                receiveTimeout: .seconds(timeout), receiveBufferSize: bufsize))
        let reply: SeedClient.Reply
        do {
            reply = try client.send(text)
        } catch {
            throw CLIError(error.description)
        }
        try emit(reply.text + (reply.text.hasSuffix("\n") ? "" : "\n"))
    }
}
