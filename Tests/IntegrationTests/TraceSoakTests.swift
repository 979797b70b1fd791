import Foundation
import Glibc
import TestSupport
import Testing

/// `packetflow trace` of a Python program under load that threads, forks and execs: 8 threads making 400 TCP
/// connections to an echo server of its own (threads too), 6 forked children that each make a connection and exec
/// (5 into Python exchanging UDP datagrams, one into sh), each ending with its own status. Traced, the program
/// must print exactly what it prints untraced and exit with the same status, and every process, thread and
/// connection must be in the trace. Bounded: one run of each, a few seconds.
@Suite(.serialized) struct TraceSoakTests {
    static let program = #"""
        import hashlib, os, socket, sys, threading

        THREADS, CONNECTIONS, CHILDREN = 8, 50, 6

        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        port = srv.getsockname()[1]

        def echo(conn):
            with conn:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)

        def serve():
            while True:
                conn, _ = srv.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

        def exchange(payload):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            c.close()
            return got

        digests = {}
        def worker(n):
            h = hashlib.sha256()
            for i in range(CONNECTIONS):
                payload = ("thread %d message %d " % (n, i)).encode() * (1 + (n * 31 + i * 7) % 300)
                got = exchange(payload)
                assert got == payload, (n, i, len(got), len(payload))
                h.update(got)
            digests[n] = h.hexdigest()[:16]

        CHILD = r"""
        import socket, sys
        k = int(sys.argv[1])
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20):
            b.sendto(b"datagram %d of child %d" % (i, k), a.getsockname())
        got = [a.recvfrom(100)[0] for i in range(20)]
        print("child %d: %d datagrams, last %r" % (k, len(got), got[-1].decode()))
        sys.exit(10 + k)
        """

        children = []
        for k in range(CHILDREN):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                # A TCP exchange from the forked process itself, then exec.
                assert exchange(b"from child %d" % k) == b"from child %d" % k
                os.dup2(w, 1)
                if k == CHILDREN - 1:
                    os.execvp("sh", ["sh", "-c", "echo child %d: exec of sh; exit %d" % (k, 10 + k)])
                os.execvp(sys.executable, [sys.executable, "-c", CHILD, str(k)])
            os.close(w)
            children.append((k, pid, r))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        for k, pid, r in children:
            out = b""
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                out += chunk
            os.close(r)
            _, status = os.waitpid(pid, 0)
            print(out.decode().strip(), "| status", os.waitstatus_to_exitcode(status))
        for n in sorted(digests):
            print("thread", n, digests[n])
        print("done:", THREADS * CONNECTIONS, "connections,", CHILDREN, "children")
        sys.exit(3)
        """#

    @Test func aProgramThatForksThreadsAndExecsRunsTheSameTraced() throws {
        try #require(geteuid() == 0, "trace needs ptrace and capture: run the tests as root (CI does)")
        let dir = try makeScratchDirectory("trace-soak")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/load.py"
        try Self.program.write(toFile: script, atomically: true, encoding: .utf8)
        let env = URL(fileURLWithPath: "/usr/bin/env")

        let plain = try runProcess(env, ["python3", script], timeout: 60)
        #expect(plain.status == 3, "untraced: \(plain.stderr)")
        #expect(plain.stdout.hasSuffix("done: 400 connections, 6 children\n"), "\(plain.stdout)")

        let timeline = dir + "/trace.jsonl"
        let traced = try runProcess(
            try packetflowBinaryChecked(), ["trace", "--format", "jsonl", "-o", timeline, "--", "python3", script],
            timeout: 60)
        #expect(traced.status == plain.status, "traced: \(traced.stderr)")
        #expect(traced.stdout == plain.stdout)

        // The program's calls are on IP sockets. Others are traced too but are not the program's: without HOME,
        // glibc asks nscd over a Unix socket when a program looks a user up, and `python3` may be a bash script
        // (pyenv's shim) whose bash processes do.
        func onIP(_ endpoint: Any?) -> Bool {
            (endpoint as? String).map { $0.hasPrefix("[") || $0.first?.isNumber == true } ?? false
        }
        let calls = try String(contentsOfFile: timeline, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["type"] as? String == "call" && (onIP($0["local"]) || onIP($0["remote"])) }
        let pids = Set(calls.compactMap { $0["pid"] as? Int })
        let tids = Set(calls.compactMap { $0["tid"] as? Int })
        #expect(pids.count == 7, "the program and its 6 children: \(pids.count) processes traced")
        #expect(tids.count >= 1 + 8, "\(tids.count) threads traced")
        let connects = calls.filter { $0["name"] as? String == "connect" && ($0["errno"] is NSNull) }
        #expect(connects.count == 400 + 6, "\(connects.count) connect calls traced")
        // A datagram's sendto names its destination; sendall's sendto on a connected socket does not.
        let datagrams = calls.filter {
            $0["name"] as? String == "sendto" && ($0["args"] as? [String: Any])?["addr"] != nil
        }
        #expect(datagrams.count == 5 * 20, "\(datagrams.count) datagrams traced")
    }
}
