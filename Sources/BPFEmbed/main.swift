// BPFEmbed: compiles the BPF program and writes the object into a Swift source file (as base64), so the
// KernelTrace module carries its kernel program inside the binary and opens it from memory: nothing to install
// beside packetflow, and no compiled object in git. Run by the BPFProgram build plugin:
//     BPFEmbed OUTPUT.swift OBJECT.o CLANG ARGUMENTS...     (ARGUMENTS make CLANG write OBJECT.o)
// One command for both steps because SwiftPM takes any declared output of a plugin command that is not a source
// file (the .o) for a resource of the target, which would give KernelTrace a resource bundle.
import Glibc

func fail(_ message: String) -> Never {
    let line = "BPFEmbed: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: BPFEmbed OUTPUT.swift OBJECT.o CLANG ARGUMENTS...") }
let outputPath = arguments[1]
let objectPath = arguments[2]

// clang's diagnostics go to our stderr, which is the build log.
var argv: [UnsafeMutablePointer<CChar>?] = arguments[3...].map { strdup($0) } + [nil]
var child: pid_t = 0
let spawned = posix_spawn(&child, arguments[3], nil, nil, &argv, environ)
for p in argv { free(p) }
guard spawned == 0 else { fail("cannot run \(arguments[3]): \(String(cString: strerror(spawned)))") }
var status: Int32 = 0
while waitpid(child, &status, 0) < 0 && errno == EINTR {}
guard status == 0 else { fail("\(arguments[3]) failed to compile the BPF program (status \(status))") }

guard let input = fopen(objectPath, "rb") else { fail("cannot open \(objectPath)") }
var bytes: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 65536)
while true {
    let n = fread(&chunk, 1, chunk.count, input)
    if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
    if n < chunk.count { break }
}
let readFailed = ferror(input) != 0
fclose(input)
// An ELF object starts with 0x7f "ELF": anything else means clang wrote something unexpected.
guard !readFailed, bytes.count > 4, bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else {
    fail("\(objectPath) is not an ELF object")
}

let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
var encoded: [UInt8] = []
encoded.reserveCapacity(bytes.count / 3 * 4 + 4)
var i = 0
while i < bytes.count {
    let b0 = UInt32(bytes[i])
    let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
    let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
    let v = b0 << 16 | b1 << 8 | b2
    encoded.append(alphabet[Int(v >> 18 & 63)])
    encoded.append(alphabet[Int(v >> 12 & 63)])
    encoded.append(i + 1 < bytes.count ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
    encoded.append(i + 2 < bytes.count ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
    i += 3
}

var out = """
    // Generated during the build by BPFEmbed from CKernelTrace/bpf/kernel_trace.bpf.c; not kept in git.

    enum EmbeddedBPFObject {
        /// The compiled BPF object (ELF with BTF and CO-RE relocations), \(bytes.count) bytes, base64 in lines of 100.
        static let base64 = \"\"\"

    """
var line = 0
while line < encoded.count {
    let end = min(line + 100, encoded.count)
    out += "        " + String(decoding: encoded[line..<end], as: UTF8.self) + "\n"
    line = end
}
out += "        \"\"\"\n}\n"

guard let output = fopen(outputPath, "w") else { fail("cannot write \(outputPath)") }
let written = fputs(out, output) >= 0
if fclose(output) != 0 || !written { fail("cannot write \(outputPath)") }
