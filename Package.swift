// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way:
//   PacketWire <- PacketFiles, PacketCapture, Sockets, Timeline
//   Timeline <- Render;  Sockets + PacketCapture + Timeline <- SocketLab;  Sockets + Timeline <- SyscallTrace
//   PacketFiles + PacketCapture + Render <- PacketReading (read's engine)
//   SyscallTrace (engines) + PacketCapture + PacketFiles <- Tracing (a trace session)
//   SyscallTrace <- KernelTrace (the eBPF engine, whose calls take the ptrace engine's shape)
//   everything <- packetflow (the thin CLI: flags, validation, delivery)
let package = Package(
    name: "PacketFlow",
    products: [
        .executable(name: "packetflow", targets: ["packetflow"]),
        .library(name: "PacketWire", targets: ["PacketWire"]),
        .library(name: "SystemCalls", targets: ["SystemCalls"]),
        .library(name: "PacketFiles", targets: ["PacketFiles"]),
        .library(name: "PacketCapture", targets: ["PacketCapture"]),
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "Timeline", targets: ["Timeline"]),
        .library(name: "Render", targets: ["Render"]),
        .library(name: "SocketLab", targets: ["SocketLab"]),
        .library(name: "SyscallTrace", targets: ["SyscallTrace"]),
        .library(name: "PacketReading", targets: ["PacketReading"]),
        .library(name: "Tracing", targets: ["Tracing"]),
        .library(name: "KernelTrace", targets: ["KernelTrace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(name: "PacketWire"),
        // The one system-call layer: Errno, typed descriptors and pids, the seam that retries EINTR, and the GNU
        // calls and constants from a C shim built with _GNU_SOURCE.
        .target(name: "CSystem"),
        .target(name: "SystemCalls", dependencies: ["CSystem"]),
        .target(name: "PacketFiles", dependencies: ["PacketWire", "SystemCalls"]),
        .target(name: "PacketCapture", dependencies: ["CPcap", "PacketWire", "SystemCalls"]),
        .target(name: "Sockets", dependencies: ["PacketWire", "SystemCalls"]),
        .target(name: "Timeline", dependencies: ["PacketWire"]),
        .target(name: "Render", dependencies: ["Timeline", "PacketWire"]),
        .target(
            name: "SocketLab", dependencies: ["Sockets", "SystemCalls", "PacketCapture", "PacketWire", "Timeline"]),
        // The C calls Swift cannot make: variadic ptrace, prctl/seccomp, fork+exec with PTRACE_TRACEME.
        .target(name: "CTraceShims", dependencies: ["CSystem"]),
        .target(
            name: "SyscallTrace", dependencies: ["CTraceShims", "PacketWire", "Sockets", "SystemCalls", "Timeline"]),
        // The read engine of `read` and `capture`: filter, decode, track streams, render, write.
        .target(
            name: "PacketReading",
            dependencies: ["PacketWire", "PacketFiles", "PacketCapture", "SystemCalls", "Timeline", "Render"]),
        // One trace end to end: an engine's calls, the capture, attribution, the pcapng with comments.
        .target(
            name: "Tracing",
            dependencies: [
                "SyscallTrace", "KernelTrace", "PacketCapture", "PacketFiles", "PacketWire", "Sockets", "SystemCalls",
                "Timeline",
            ]),
        // The eBPF engine: libbpf as a system library like CPcap (Debian: libbpf-dev); the record layouts and the
        // few C calls (fork+exec gated on registration, pidfd_open, libbpf's log); and the kernel program in
        // CKernelTrace/bpf, which SwiftPM does not compile for the host: the BPFProgram plugin compiles it with
        // the toolchain's `clang -target bpf` and embeds the object in KernelTrace through BPFEmbed.
        .systemLibrary(
            name: "CLibBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev"])]
        ),
        .target(name: "CKernelTrace", dependencies: ["CLibBPF", "CSystem"], exclude: ["bpf"]),
        .executableTarget(name: "BPFEmbed"),
        .plugin(name: "BPFProgram", capability: .buildTool(), dependencies: ["BPFEmbed"]),
        .target(
            name: "KernelTrace",
            dependencies: [
                "CKernelTrace", "CLibBPF", "PacketWire", "Sockets", "SystemCalls", "Timeline", "SyscallTrace",
            ],
            plugins: ["BPFProgram"]
        ),
        .executableTarget(
            name: "packetflow",
            dependencies: [
                "PacketWire", "PacketFiles", "PacketCapture", "Sockets", "Timeline", "Render", "SocketLab",
                "SyscallTrace", "PacketReading", "Tracing", "SystemCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The library's examples (docs/library.md shows them; a test checks the two agree and runs them).
        .executableTarget(name: "whosent", dependencies: ["Tracing", "Timeline"], path: "Examples/whosent"),
        .executableTarget(
            name: "streams", dependencies: ["PacketFiles", "PacketWire", "Timeline"], path: "Examples/streams"),
        // Shared by test targets only: running child processes, the lock on the seed's fixed port.
        .target(
            name: "TestSupport", dependencies: ["Sockets", "PacketWire", "SystemCalls", "CLibBPF"],
            path: "Tests/TestSupport"),
        .testTarget(name: "PacketWireTests", dependencies: ["PacketWire", "TestSupport"]),
        .testTarget(name: "PacketFilesTests", dependencies: ["PacketFiles", "PacketWire", "TestSupport"]),
        .testTarget(name: "TimelineTests", dependencies: ["Timeline", "Render", "PacketWire"]),
        .testTarget(
            name: "SocketsTests", dependencies: ["Sockets", "SocketLab", "PacketWire", "SystemCalls", "TestSupport"]),
        .testTarget(
            name: "LabTests", dependencies: ["SocketLab", "Timeline", "Render", "PacketWire", "Sockets", "TestSupport"]),
        .testTarget(
            name: "RenderTests",
            dependencies: ["Render", "Timeline", "PacketWire", "SocketLab", "Sockets", "TestSupport"],
            exclude: ["png_colors.py"]
        ),
        .testTarget(
            name: "TraceTests",
            dependencies: [
                "SyscallTrace", "Tracing", "Timeline", "PacketWire", "Sockets", "SystemCalls", "TestSupport",
                "CLibBPF",
            ]),
        .testTarget(
            name: "KernelTraceTests",
            dependencies: [
                "KernelTrace", "SyscallTrace", "Timeline", "PacketCapture", "PacketWire", "Sockets", "SystemCalls",
                "TestSupport",
                "CSyscallDenial", "CLibBPF",
            ]),
        // Refuses system calls on one thread (seccomp without TSYNC), so a test can see the engine refused bpf(2).
        .target(name: "CSyscallDenial", path: "Tests/CSyscallDenial"),
        .testTarget(
            name: "ReadTests",
            dependencies: [
                "Render", "Timeline", "PacketFiles", "PacketCapture", "PacketWire", "PacketReading", "TestSupport",
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "SocketLab", "Timeline", "Render", "PacketCapture", "PacketFiles", "PacketWire", "SystemCalls",
                "TestSupport",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
