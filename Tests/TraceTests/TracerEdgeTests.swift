import Foundation
import Testing
import TestSupport

/// `packetflow trace` where a program does something the stop loop must get right beyond socket calls: forks
/// whose parents watch them, a main thread that ends before its threads, attaching where it cannot be done.
/// Real processes (root, as CI); each test checks what the program or the user sees.
@Suite(.serialized) struct TracerEdgeTests {
    typealias Robust = RobustnessTraceTests

    /// Every child a traced program makes starts with a SIGSTOP of the tracer's. When the kernel reported the fork
    /// before that stop (the usual order) the tracer passed the SIGSTOP on, and the parent, waiting with
    /// WUNTRACED as shells do, saw its child stopped. The order varies from run to run: five runs.
    @Test func aForkedChildIsNeverSeenStoppedByItsParent() throws {
        let scripts = Robust.Scripts()
        let script = scripts.write("fork.py", """
            import os, signal
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            _, status = os.waitpid(pid, os.WUNTRACED)
            print("stopped" if os.WIFSTOPPED(status) else "exited", flush=True)
            if os.WIFSTOPPED(status):
                os.kill(pid, signal.SIGCONT)
                os.waitpid(pid, 0)
            """)
        for run in 1...5 {
            let (status, _, output) = try Robust.trace(["python3", script], extra: ["--no-capture"])
            #expect(status == 0, "run \(run)")
            #expect(output.hasPrefix("exited\n"), "run \(run): \(output)")
        }
    }
}

extension TracerEdgeTests {
    /// The exec itself can fail in the traced child after packetflow's own checks passed: a script whose interpreter
    /// is missing, a program open for writing. The child says why in one line and exits as a shell would. It may
    /// call only async-signal-safe functions there, so the words are looked up before the fork; they are strerror's.
    @Test func anExecThatFailsInTheTracedChildSaysWhyInOneLine() throws {
        let scripts = Robust.Scripts()
        let script = scripts.write("missing-interpreter", "#!/no/such/interpreter\n")
        #expect(chmod(script, 0o755) == 0)
        let missing = try runProcess(packetflowBinary(), ["trace", "--no-capture", "--", script])
        #expect(missing.status == 127)
        #expect(missing.stderr == "packetflow: cannot run \(script): No such file or directory\n")

        let busy = scripts.dir + "/busy"
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: busy)
        let writer = open(busy, O_WRONLY | O_CLOEXEC)
        try #require(writer >= 0)
        defer { close(writer) }
        let running = try runProcess(packetflowBinary(), ["trace", "--no-capture", "--", busy])
        #expect(running.status == 126)
        #expect(running.stderr == "packetflow: cannot run \(busy): Text file busy\n")
    }
}
