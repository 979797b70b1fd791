import Glibc

// Glibc's Swift module is built without _GNU_SOURCE, so the Linux-only calls and flags below are not imported.
// They are part of glibc's stable ABI, so we look the functions up once by name and spell out the flag values
// from the kernel headers, instead of adding a C shim target for three declarations. Both are used only so that
// descriptors are close-on-exec from birth (no window for a concurrent fork/exec to inherit them).

/// `accept4(2)`.
let gnuAccept4:
    @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32 = lookUp("accept4")

/// `pipe2(2)`.
let gnuPipe2: @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32 = lookUp("pipe2")

/// `POLLRDHUP` from `<poll.h>` (asm-generic/poll.h: 0x2000).
let gnuPOLLRDHUP: Int16 = 0x2000

private func lookUp<Function>(_ name: String) -> Function {
    guard let symbol = dlsym(nil, name) else {
        fatalError("glibc has no \(name); Linux with glibc 2.10 or later is required")
    }
    return unsafeBitCast(symbol, to: Function.self)
}
