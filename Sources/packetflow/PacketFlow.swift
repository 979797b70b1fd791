import ArgumentParser
import Glibc

@main
struct PacketFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packetflow",
        abstract: "Which line of my program put this packet on the wire?",
        discussion: """
            PacketFlow runs socket calls step by step, captures the wire, and shows which call sent which packet.

            Start with the seed experiment (needs root or CAP_NET_RAW to capture on lo):
              packetflow lab
              packetflow lab --lang ja
            """,
        subcommands: [
            LabCommand.self, TraceCommand.self, ReadCommand.self, CaptureCommand.self, ServerCommand.self,
            ClientCommand.self,
        ]
    )

    static func main() {
        // A write to a reader that has gone fails with EPIPE instead of killing the process, so every command
        // stops writing and cleans up; then it ends as a closed pipe ends a program (the traced program gets the
        // default disposition back before exec).
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch is OutputClosed {
            signal(SIGPIPE, SIG_DFL)
            raise(SIGPIPE)
            Glibc.exit(128 + SIGPIPE)
        } catch {
            exit(withError: error)
        }
    }
}

/// An error the user can act on: printed as one line on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
