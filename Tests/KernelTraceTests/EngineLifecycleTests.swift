import CLibBPF
import CSyscallDenial
import Foundation
import Sockets
import SyscallTrace
import SystemCalls
import TestSupport
import Testing

@testable import KernelTrace

extension KernelTraceTests {
    /// Loading, refusing, attaching to a running process, stopping, and dying: what the engine leaves behind.
    @Suite struct EngineLifecycleTests {
        /// bpf(2) refused as a container's seccomp profile refuses it: the engine says so in one line instead of
        /// failing somewhere inside libbpf. The filter covers one thread, made for the purpose.
        @Test(arguments: [EPERM, ENOSYS]) func refusedBPFCallIsExplained(error: Int32) throws {
            let bpf: Int32 = 321  // bpf(2) on x86_64
            let why = try onThread(refusing: [bpf], with: error) { KernelTracer.availability() }
            #expect(why == .bpfRefused(Errno(rawValue: error)))
            let line = try #require(why?.description)
            #expect(line.contains("bpf(2)") && !line.contains("\n"), "\(line)")
            // The same machine, bpf(2) allowed: the engine loads.
            #expect(KernelTracer.availability() == nil)
        }

        /// The verifier's refusal and libbpf's failure lines as this kernel prints them, turned into the reason.
        @Test func verifierRefusalNamesProgramAndReason() {
            let log = """
                libbpf: prog 'kt_sched_process_exit': BPF program load failed: Permission denied
                libbpf: prog 'kt_sched_process_exit': -- BEGIN PROG LOAD LOG --
                431: (15) if r2 == 0x0 goto pc+15     ; R2=scalar(umin=1)
                436: (85) call bpf_task_storage_get#156
                R2 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_
                processed 56 insns (limit 1000000) max_states_per_insn 0 total_states 5 peak_states 5 mark_read 0
                -- END PROG LOAD LOG --
                libbpf: prog 'kt_sched_process_exit': failed to load: -13
                libbpf: failed to load object 'kt'
                """
            #expect(
                KernelProgram.diagnose(errno: EACCES, messages: log)
                    == .programRejected(
                        program: "kt_sched_process_exit", reason: "R2 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_"
                    ))
            let lockdown = """
                libbpf: prog 'kt_sys_enter': -- BEGIN PROG LOAD LOG --
                12: (85) call bpf_probe_read_kernel#113
                program of this type cannot use helper bpf_probe_read_kernel#113
                processed 12 insns (limit 1000000)
                -- END PROG LOAD LOG --
                libbpf: prog 'kt_sys_enter': failed to load: -22
                """
            #expect(KernelProgram.diagnose(errno: EINVAL, messages: lockdown) == .lockdown(mode: "confidentiality"))
        }

        /// -p: the process runs on while the engine registers it, and its calls from then on are recorded (those
        /// made before are not), including a thread it starts later.
        @Test func attachesToRunningProcess() throws {
            let script = #"""
                import socket, sys, threading
                srv = socket.socket()
                srv.bind(("127.0.0.1", 0))
                srv.listen(1)
                print("ready", flush=True)
                sys.stdin.readline()
                def serve():
                    conn, _ = srv.accept()
                    conn.sendall(conn.recv(16))
                    conn.close()
                t = threading.Thread(target=serve)
                t.start()
                cli = socket.create_connection(srv.getsockname())
                cli.sendall(b"hi")
                cli.recv(16)
                cli.close()
                t.join()
                """#
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script]
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            #expect(firstLine(output).hasPrefix("ready"))

            var options = KernelTracer.Options()
            options.attach = process.processIdentifier
            let run = try KernelTracer(options).run(started: { input.fileHandleForWriting.write(Data("go\n".utf8)) })
            process.waitUntilExit()
            // It exited while attached: its status comes from its last thread's exit (it is not our child).
            #expect(run.detached && run.exitStatus == 0)
            let names = Set(run.calls.compactMap { Syscall(rawValue: Int($0.syscallNumber)) })
            #expect(names.isSuperset(of: [.socket, .connect, .sendto, .recvfrom, .accept4, .close]), "\(names)")
            #expect(!names.contains(.listen) && !names.contains(.bind), "made before the engine attached")
            #expect(run.calls.allSatisfy { $0.pid == process.processIdentifier })
            let accept = try #require(run.calls.first { $0.syscallNumber == Int32(Syscall.accept4.rawValue) })
            #expect(accept.tid != accept.pid, "a thread started after attaching is followed")
        }

        /// A stop request with `forward` passes SIGINT to the launched command; once the tracer is gone, none of its
        /// programs is left in the kernel.
        @Test func stopForwardsInterruptAndDetaches() throws {
            var options = KernelTracer.Options()
            options.command = ["sleep", "30"]
            // Ours are the ones this process holds now and did not before (other tests load theirs meanwhile).
            let before = bpfProgramIDs(heldBy: getpid())
            var tracer: KernelTracer? = try KernelTracer(options)
            let ours = bpfProgramIDs(heldBy: getpid()).subtracting(before)
            #expect(ours.count == 8, "every hook is loaded: \(ours)")
            let run = try tracer!.run(started: { KernelTracer.requestStop(forward: true) })
            #expect(run.exitStatus == 128 + SIGINT)
            tracer = nil
            #expect(bpfProgramsGone(ours), "programs still loaded after the tracer was released")
        }

        /// A tracer killed with SIGKILL (no chance to clean up) leaves nothing attached: its links and programs are
        /// descriptors of the dead process. The tracer runs in a child process made by the exit test.
        @Test func killedTracerLeavesNothingAttached() async throws {
            let result = await #expect(processExitsWith: .signal(SIGKILL), observing: [\.standardOutputContent]) {
                let before = bpfProgramIDs(heldBy: getpid())
                let tracer = try KernelTracer(KernelTracer.Options())
                let ids = bpfProgramIDs(heldBy: getpid()).subtracting(before).map { String($0) }
                let line = ids.joined(separator: " ") + "\n"
                _ = line.withCString { write(1, $0, strlen($0)) }
                withExtendedLifetime(tracer) { _ = kill(getpid(), SIGKILL) }
            }
            let text = String(decoding: try #require(result).standardOutputContent, as: UTF8.self)
            let ids = text.split(whereSeparator: \.isWhitespace).compactMap { UInt32($0) }
            #expect(ids.count == 8, "the child loaded every hook: \(text)")
            #expect(bpfProgramsGone(ids), "programs of the killed tracer are still loaded")
        }
    }
}

/// Runs `body` on a new thread on which the system calls `numbers` fail with `error` (seccomp, that thread only).
func onThread<T: Sendable>(refusing numbers: [Int32], with error: Int32, _ body: @escaping @Sendable () -> T) throws
    -> T
{
    let box = ThreadResult<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        let installed = numbers.withUnsafeBufferPointer {
            syscall_denial_install($0.baseAddress, Int32($0.count), error)
        }
        if installed == 0 { box.value = body() } else { box.failure = errno }
        done.signal()
    }
    thread.start()
    done.wait()
    guard let value = box.value else { throw KernelTraceTestError("seccomp filter refused: errno \(box.failure)") }
    return value
}

/// What a thread of ``onThread(refusing:with:_:)`` produced, read after it signalled.
final class ThreadResult<T>: @unchecked Sendable {
    var value: T?
    var failure: Int32 = 0
}
