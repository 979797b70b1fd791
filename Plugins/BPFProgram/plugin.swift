import Foundation
import PackagePlugin

/// Compiles the eBPF trace engine's kernel program (CKernelTrace/bpf/kernel_trace.bpf.c and its kernel_types.h) with the toolchain's own
/// clang (`-target bpf -O2 -g`: BTF and CO-RE relocations, so one object runs on any kernel with BTF) and embeds
/// the object in the target as Swift source, which the loader opens from memory. Nothing compiled is kept in git
/// and no kernel header is generated: the program declares the few kernel fields it reads.
@main
struct BPFProgram: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        guard
            let shims = target.recursiveTargetDependencies.first(where: { $0.name == "CKernelTrace" })
                as? ClangSourceModuleTarget
        else {
            throw BPFProgramError("\(target.name) must depend on CKernelTrace, which holds the BPF program")
        }
        let source = shims.directoryURL.appending(path: "bpf/kernel_trace.bpf.c")
        let include = shims.directoryURL.appending(path: "include")
        let object = context.pluginWorkDirectoryURL.appending(path: "kernel_trace.bpf.o")
        let swift = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObject.swift")
        let clang: URL
        do {
            clang = try context.tool(named: "clang").url
        } catch {
            throw BPFProgramError("the Swift toolchain's clang was not found: it compiles the BPF program (\(error))")
        }
        // One command (see BPFEmbed): the object is an intermediate file, not a declared output.
        return [
            .buildCommand(
                displayName: "Compiling and embedding BPF program kernel_trace.bpf.c",
                executable: try context.tool(named: "BPFEmbed").url,
                arguments: [
                    swift.path, object.path, clang.path,
                    "-target", "bpf", "-O2", "-g", "-Wall", "-Wno-unused-parameter", "-I", include.path,
                    "-c", source.path, "-o", object.path,
                ],
                inputFiles: [
                    source, shims.directoryURL.appending(path: "bpf/kernel_types.h"),
                    include.appending(path: "KernelTraceEvents.h"),
                ],
                outputFiles: [swift])
        ]
    }
}

struct BPFProgramError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
