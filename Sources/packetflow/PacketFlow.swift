import ArgumentParser

@main
struct PacketFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "packetflow",
        abstract: "Which line of my program put this packet on the wire?"
    )
}
