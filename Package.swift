// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way:
// PacketWire <- PacketFiles / PacketCapture <- Timeline <- Render <- packetflow
// Sockets <- SocketLab (the seed's server, client and the lab scenarios) <- packetflow
let package = Package(
    name: "PacketFlow",
    products: [
        .executable(name: "packetflow", targets: ["packetflow"]),
        .library(name: "PacketWire", targets: ["PacketWire"]),
        .library(name: "PacketFiles", targets: ["PacketFiles"]),
        .library(name: "PacketCapture", targets: ["PacketCapture"]),
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "Timeline", targets: ["Timeline"]),
        .library(name: "Render", targets: ["Render"]),
        .library(name: "SocketLab", targets: ["SocketLab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(name: "PacketWire"),
        .target(name: "PacketFiles", dependencies: ["PacketWire"]),
        .target(name: "PacketCapture", dependencies: ["CPcap", "PacketWire", "PacketFiles"]),
        .target(name: "Sockets", dependencies: ["PacketWire"]),
        .target(name: "Timeline", dependencies: ["PacketWire"]),
        .target(name: "Render", dependencies: ["Timeline", "PacketWire"]),
        .target(name: "SocketLab", dependencies: ["Sockets", "PacketCapture", "Timeline"]),
        .executableTarget(
            name: "packetflow",
            dependencies: [
                "PacketWire", "PacketFiles", "PacketCapture", "Sockets", "Timeline", "Render", "SocketLab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "PacketWireTests", dependencies: ["PacketWire"]),
        .testTarget(name: "PacketFilesTests", dependencies: ["PacketFiles", "PacketWire"]),
        .testTarget(name: "SocketsTests", dependencies: ["Sockets", "SocketLab"]),
        .testTarget(name: "ReadTests",
                    dependencies: ["Render", "Timeline", "PacketFiles", "PacketCapture", "PacketWire"]),
        .testTarget(name: "IntegrationTests",
                    dependencies: ["SocketLab", "Timeline", "Render", "PacketCapture", "PacketFiles", "PacketWire"]),
    ],
    swiftLanguageModes: [.v6]
)
