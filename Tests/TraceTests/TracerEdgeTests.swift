import Foundation
import TestSupport
import Testing

/// `packetflow trace` where a program does something the stop loop must get right beyond socket calls: forks
/// whose parents watch them, a main thread that ends before its threads, attaching where it cannot be done.
/// Real processes (root, as CI); each test checks what the program or the user sees.
@Suite(.serialized) struct TracerEdgeTests {
    typealias Robust = RobustnessTraceTests
    typealias Seed = SeedTraceTests
    typealias Running = SeedTraceTests.Running

    /// Every child a traced program makes starts with a SIGSTOP of the tracer's. When the kernel reported the fork
    /// before that stop (the usual order) the tracer passed the SIGSTOP on, and the parent, waiting with
    /// WUNTRACED as shells do, saw its child stopped. The order varies from run to run: five runs.
    @Test(arguments: Seed.Engine.allCases)
    func aForkedChildIsNeverSeenStoppedByItsParent(engine: Seed.Engine) throws {
        let scripts = Robust.Scripts()
        let script = scripts.write(
            "fork.py",
            """
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
            let (status, _, output) = try Robust.trace(["python3", script], engine: engine, extra: ["--no-capture"])
            #expect(status == 0, "run \(run)")
            #expect(output.hasPrefix("exited\n"), "run \(run): \(output)")
        }
    }
}

extension TracerEdgeTests {
    /// The exec itself can fail in the traced child after packetflow's own checks passed: a script whose interpreter
    /// is missing, a program open for writing. The child says why in one line and exits as a shell would. It may
    /// call only async-signal-safe functions there, so the words are looked up before the fork; they are strerror's.
    @Test(arguments: Seed.Engine.allCases)
    func anExecThatFailsInTheTracedChildSaysWhyInOneLine(engine: Seed.Engine) throws {
        let scripts = Robust.Scripts()
        let script = scripts.write("missing-interpreter", "#!/no/such/interpreter\n")
        #expect(chmod(script, 0o755) == 0)
        let missing = try runProcess(packetflowBinary(), ["trace"] + engine.flags + ["--no-capture", "--", script])
        #expect(missing.status == 127)
        #expect(missing.stderr == "packetflow: cannot run \(script): No such file or directory\n")

        let busy = scripts.dir + "/busy"
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: busy)
        let writer = open(busy, O_WRONLY | O_CLOEXEC)
        try #require(writer >= 0)
        defer { close(writer) }
        let running = try runProcess(packetflowBinary(), ["trace"] + engine.flags + ["--no-capture", "--", busy])
        #expect(running.status == 126)
        #expect(running.stderr == "packetflow: cannot run \(busy): Text file busy\n")
    }
}

extension TracerEdgeTests {
    /// A C program whose main thread calls pthread_exit first; a thread it left waits until the main thread has
    /// ended (a zombie in /proc), then two more threads each send a datagram, and the process exits with 7. With an
    /// argument it prints "ready" and waits for a line first, so that a tracer can attach meanwhile.
    static let mainThreadEndsFirst = """
        #include <arpa/inet.h>
        #include <pthread.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <unistd.h>

        static int waits;

        static int leader_ended(void) {
            char path[64], buf[512];
            snprintf(path, sizeof path, "/proc/%d/stat", getpid());
            for (int i = 0; i < 500; i++) {
                FILE *f = fopen(path, "r");
                if (f) {
                    size_t n = fread(buf, 1, sizeof buf - 1, f);
                    fclose(f);
                    buf[n] = 0;
                    char *p = strrchr(buf, ')');
                    if (p && p[1] == ' ' && p[2] == 'Z') return 1;
                }
                usleep(10000);
            }
            return 0;
        }

        static void *send_one(void *arg) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
            to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            char text[16];
            int len = snprintf(text, sizeof text, "thread %ld", (long)arg);
            sendto(s, text, (size_t)len, 0, (struct sockaddr *)&to, sizeof to);
            close(s);
            return NULL;
        }

        static void *run(void *arg) {
            (void)arg;
            if (!leader_ended()) { fputs("the main thread did not end\\n", stderr); exit(2); }
            if (waits) {
                char line[8];
                puts("ready");
                fflush(stdout);
                if (!fgets(line, sizeof line, stdin)) exit(3);
            }
            for (long n = 1; n <= 2; n++) {
                pthread_t t;
                pthread_create(&t, NULL, send_one, (void *)n);
                pthread_join(t, NULL);
            }
            exit(7);
        }

        int main(int argc, char **argv) {
            (void)argv;
            waits = argc > 1;
            pthread_t t;
            pthread_create(&t, NULL, run, NULL);
            pthread_exit(NULL);
        }
        """

    /// Compiles ``mainThreadEndsFirst`` into `scripts`' directory.
    static func compileMainThreadEndsFirst(_ scripts: Robust.Scripts) throws -> String {
        let source = scripts.write("main-ends-first.c", mainThreadEndsFirst)
        let binary = scripts.dir + "/main-ends-first"
        let gcc = try runProcess(URL(fileURLWithPath: "/usr/bin/gcc"), ["-O1", "-pthread", "-o", binary, source])
        try #require(gcc.status == 0, "gcc: \(gcc.stderr)")
        return binary
    }

    /// The six calls of the two sending threads, each the process's and its own thread's.
    static func expectTheSendingThreadsCalls(_ events: [[String: Any]], pid: Int) {
        let calls = events.filter { $0["type"] as? String == "call" }
        let names = calls.map { $0["name"] as? String ?? "?" }
        #expect(names == ["socket", "sendto", "close", "socket", "sendto", "close"])
        #expect(calls.allSatisfy { $0["pid"] as? Int == pid })
        #expect(calls.allSatisfy { $0["tid"] as? Int != pid }, "the main thread had ended")
        #expect(Set(calls.compactMap { $0["tid"] as? Int }).count == 2)
        let sends = calls.filter { $0["name"] as? String == "sendto" }
        let texts = sends.compactMap { (($0["args"] as? [String: Any])?["data"] as? [String: Any])?["text"] as? String }
        #expect(texts == ["thread 1", "thread 2"])
        for send in sends {
            // Asked of the kernel through a duplicate of the descriptor: the port the datagram left from.
            let local = send["local"] as? String ?? ""
            #expect(local.hasPrefix("0.0.0.0:") && local != "0.0.0.0:0", "\(send)")
        }
    }

    /// The process goes on after its main thread ends: its threads' calls are traced, and its status is the one it
    /// exits with when its last thread ends. (The tracer used to duplicate descriptors through the main thread,
    /// whose descriptor table had gone with it, and found no socket: 0 calls.)
    @Test(arguments: Seed.Engine.allCases)
    func callsAfterTheMainThreadEndedAreTracedToTheProcesssEnd(engine: Seed.Engine) throws {
        let scripts = Robust.Scripts()
        let program = try Self.compileMainThreadEndsFirst(scripts)
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--no-capture", "--format", "jsonl", "--", program])
        try run.stdin.fileHandleForWriting.close()
        let output = run.finish()
        #expect(run.process.terminationStatus == 7, "\(run.errors)")
        let events = Seed.jsonLines(output)
        let pid = try #require(events.first?["pid"] as? Int, "\(output)")
        Self.expectTheSendingThreadsCalls(events, pid: pid)
    }

    /// `trace -p` of such a process once its main thread has ended: that thread cannot be seized (a zombie), its
    /// others can (ptrace: TracerPid shows it; eBPF registers them), and what they do is traced through them until
    /// the process exits.
    @Test(arguments: Seed.Engine.allCases)
    func attachingAfterTheMainThreadEndedFollowsTheOtherThreads(engine: Seed.Engine) throws {
        let scripts = Robust.Scripts()
        let program = try Self.compileMainThreadEndsFirst(scripts)
        let target = try Running([program, "wait"])
        defer { target.kill() }
        try #require(target.waitFor("ready\n"))
        let pid = target.process.processIdentifier
        let trace = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--no-capture", "--format", "jsonl", "-p", "\(pid)"])
        defer { trace.kill() }
        try #require(trace.waitForError("attached to \(pid) (\(engine))"), "\(trace.errors)")
        if engine == .ptrace {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            let waiting = try #require(threads.compactMap(Int32.init).first { $0 != pid })
            #expect(Robust.tracerPid(of: waiting) == Int(trace.process.processIdentifier), "\(trace.errors)")
        }
        target.stdin.fileHandleForWriting.write(Data("go\n".utf8))
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 7, "\(trace.errors)")
        Self.expectTheSendingThreadsCalls(Seed.jsonLines(output), pid: Int(pid))
    }
}

extension TracerEdgeTests {
    /// `trace -p` of a process that has exited but was not collected: the kernel refuses it as it refuses another
    /// user's process (EPERM), which is not what the user must do something about. (eBPF could register it and
    /// would trace nothing: it says the same.)
    @Test(arguments: Seed.Engine.allCases)
    func attachingToAZombieSaysItHasExited(engine: Seed.Engine) throws {
        let scripts = Robust.Scripts()
        let parent = scripts.write(
            "zombie.py",
            """
            import os, sys, time
            child = os.fork()
            if child == 0:
                os._exit(0)
            print(child, flush=True)
            sys.stdin.read()
            """)
        let running = try Running(["/usr/bin/env", "python3", parent])
        defer { running.kill() }
        try #require(running.waitFor("\n"))
        let zombie = try #require(Int32(String(decoding: running.buffer, as: UTF8.self).split(separator: "\n")[0]))
        let deadline = Date().addingTimeInterval(5)
        while !Robust.state(of: zombie).contains("Z (zombie)") && Date() < deadline { usleep(10_000) }
        // The parent as /proc names it (python3 may be reached through a shim that execs it).
        let parentPid = running.process.processIdentifier
        let comm = (try? String(contentsOfFile: "/proc/\(parentPid)/comm", encoding: .utf8)) ?? "?"
        let parentName = "\(comm.trimmingCharacters(in: .newlines))[\(parentPid)]"
        let r = try runProcess(packetflowBinary(), ["trace"] + engine.flags + ["--no-capture", "-p", "\(zombie)"])
        #expect(r.status == 1)
        #expect(
            r.stderr == "Error: cannot attach to \(zombie): it has already exited (a zombie its parent "
                + "\(parentName) has not collected yet); there is nothing left to trace\n")
    }

    /// `trace -p` of a process another tracer already holds (here a first `trace -p`). ptrace only: a process may
    /// have one ptrace tracer, while any number of eBPF traces may watch it.
    @Test func attachingToAProcessAlreadyTracedNamesTheTracer() throws {
        let sleeper = try Running(["/bin/sleep", "30"])
        defer { sleeper.kill() }
        let pid = sleeper.process.processIdentifier
        let first = try Running([Seed.packetflow, "trace", "--engine", "ptrace", "--no-capture", "-p", "\(pid)"])
        defer { first.kill() }
        let deadline = Date().addingTimeInterval(5)
        while Robust.tracerPid(of: pid) != Int(first.process.processIdentifier) && Date() < deadline {
            usleep(20_000)
        }
        try #require(Robust.tracerPid(of: pid) == Int(first.process.processIdentifier))
        let r = try runProcess(packetflowBinary(), ["trace", "--engine", "ptrace", "--no-capture", "-p", "\(pid)"])
        #expect(r.status == 1)
        let tracer = "packetflow[\(first.process.processIdentifier)]"
        #expect(
            r.stderr == "Error: cannot attach to \(pid): it is already traced by \(tracer); a process can have "
                + "only one tracer: stop that one first\n")
        kill(first.process.processIdentifier, SIGINT)
        _ = first.finish()
        #expect(Robust.tracerPid(of: pid) == 0, "the first trace let it go")
    }
}
