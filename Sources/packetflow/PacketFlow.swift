import ArgumentParser

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
}

/// An error the user can act on: printed as one line on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
