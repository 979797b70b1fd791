import Glibc
import PacketWire
import Sockets
import SystemCalls
import Testing

@testable import SyscallTrace

/// The ptrace engine's stop loop driven by a ``ScriptedKernel``: no root, no real tracee. Each test plays the stops
/// a real kernel gives in one situation, in the order it gives them, and compares every recorded call and every
/// request the engine made of the tracees with what must happen.
@Suite struct StopLoopTests {
    typealias Step = ScriptedKernel.Step
    static let client = SocketAddress(ip: IPAddress("127.0.0.1")!, port: 40000)
    static let server = SocketAddress(ip: IPAddress("127.0.0.1")!, port: 49152)
    static let launchOptions =
        PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec
        | PT.traceSeccomp | PT.exitKill
    static let attachOptions = PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec

    /// A launched `python3` (pid 100) that inherited socket 7001, connected, on descriptor 3.
    static func launched(_ steps: [Step]) -> ScriptedKernel {
        let kernel = ScriptedKernel(
            [
                .report(tid: 100, .signal(SIGSTOP), at: 0),
                .report(tid: 100, .event(PT.eventExec), at: 1, change: { $0.comms[100] = "python3" }),
            ] + steps)
        kernel.tgids[100] = 100
        kernel.comms[100] = "packetflow"
        kernel.files[100] = [3: .socket(7001)]
        kernel.sockets[7001] = .init(family: AF_INET, type: 1, local: client, remote: server, state: .established)
        kernel.inherited = [3]
        return kernel
    }

    static func run(_ kernel: ScriptedKernel, attach: Int32? = nil, noteFD: Int32? = nil) throws -> TraceResult {
        var options = PtraceEngine.Options()
        if let attach { options.attach = attach } else { options.command = ["python3", "client.py"] }
        options.noteFD = noteFD
        return try PtraceEngine(options, kernel: kernel, requests: kernel.takeRequest).run()
    }

    /// The requests a launch always begins with: options at the first stop, then on through the exec.
    static let launchRequests = [
        "setOptions(\(launchOptions)) 100", "cont(signal: 0) 100", "cont(signal: 0) 100",
    ]

    static func expectClean(_ kernel: ScriptedKernel) {
        #expect(kernel.violations == [])
        #expect(!kernel.ranOut, "the loop ends by itself when the last thread is gone")
        #expect(kernel.steps.isEmpty)
    }

    // MARK: the Python hook

    /// The hook announces, by a write(2) on a descriptor that does not exist, where it keeps the line of the socket
    /// method each thread is in; the write is swallowed (the program sees it succeed), and each later call reads
    /// that line from the program's memory as its source.
    @Test func theHooksLineIsReadFromTheProgramsMemory() throws {
        let announce = Array("PFA 20480".utf8)  // 0x5000
        let note = SyscallRegisters.entry(.write, UInt64(bitPattern: -4242), 0x4000, UInt64(announce.count))
        let send = SyscallRegisters.entry(.sendto, 3, 0x1000, 2)
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 5, regs: note, change: { $0.memory[0x4000] = announce }),
            .report(
                tid: 100, .seccomp, at: 10, regs: send,
                change: {
                    $0.memory[0x1000] = Array("hi".utf8)
                    $0.memory[0x5000] = Array("client.py:7 s.send(b'hi')".utf8) + [0, 0x41]
                }),
            .report(tid: 100, .syscall, at: 11, regs: send.returning(2)),
            .report(tid: 100, .exited(0), at: 20),
        ])
        let result = try Self.run(kernel, noteFD: -4242)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] sendto(fd=3, data=\"hi\"(2)) = 2 [10-11] fd=3 socket=7001 local=127.0.0.1:40000 "
                    + "remote=127.0.0.1:49152 state=ESTABLISHED source=client.py:7 s.send(b'hi')"
            ])
        #expect(
            kernel.launched?.filter
                == LaunchFilter(
                    always: Syscall.alwaysTraced.map { Int32($0.rawValue) },
                    gated: Syscall.fdGated.map { Int32($0.rawValue) },
                    fds: [-4242, 3]))
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "skip 100 = \(announce.count)", "cont(signal: 0) 100", "syscall(signal: 0) 100", "cont(signal: 0) 100",
            ])
        Self.expectClean(kernel)
    }

    // MARK: fork

    /// python3 sends on its socket, then forks; the child (101) sends on the socket it inherited. The kernel may
    /// report the fork event to the parent before the child's first stop or after it; either way the child's table
    /// is its parent's copy (nothing is asked about its descriptor 3), its call is its own, and the SIGSTOP every
    /// traced child starts with is the tracer's, never delivered to it (its parent, waiting with WUNTRACED, would
    /// see it stopped).
    @Test(arguments: [false, true])
    func aForkedChildIsFollowedWhicheverOfItsFirstStopAndTheForkEventComesFirst(childStopsFirst: Bool) throws {
        let send = SyscallRegisters.entry(.sendto, 3, 0x1000, 2)
        func child(_ k: ScriptedKernel) {
            k.tgids[101] = 101
            k.comms[101] = "python3"
            k.files[101] = k.files[100]
            k.eventMessages[100] = 101
        }
        let fork = Step.report(tid: 100, .event(PT.eventFork), at: 20, change: child)
        let firstStop = Step.report(tid: 101, .signal(SIGSTOP), at: 21, change: child)
        let kernel = Self.launched(
            [
                .report(tid: 100, .seccomp, at: 10, regs: send, change: { $0.memory[0x1000] = Array("hi".utf8) }),
                .report(tid: 100, .syscall, at: 11, regs: send.returning(2)),
            ] + (childStopsFirst ? [firstStop, fork] : [fork, firstStop]) + [
                .report(tid: 101, .seccomp, at: 30, regs: send, change: { $0.memory[0x1000] = Array("hi".utf8) }),
                .report(tid: 101, .syscall, at: 31, regs: send.returning(2)),
                .report(tid: 101, .exited(0), at: 40),
                .report(tid: 100, .exited(3), at: 41),
            ])
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] sendto(fd=3, data=\"hi\"(2)) = 2 [10-11] fd=3 socket=7001 local=127.0.0.1:40000 "
                    + "remote=127.0.0.1:49152 state=ESTABLISHED",
                "#2 python3[101/101] sendto(fd=3, data=\"hi\"(2)) = 2 [30-31] fd=3 socket=7001 local=127.0.0.1:40000 "
                    + "remote=127.0.0.1:49152 state=ESTABLISHED",
            ])
        let (parent, child) = ("cont(signal: 0) 100", "cont(signal: 0) 101")
        #expect(
            kernel.log.map(\.description)
                == Self.launchRequests + ["syscall(signal: 0) 100", "cont(signal: 0) 100"]
                + (childStopsFirst ? [child, parent] : [parent, child])
                + ["syscall(signal: 0) 101", "cont(signal: 0) 101"])
        // The parent's entry (learning the socket) and exit; the child's exit only.
        #expect(kernel.duplicated == ["100/3", "100/3", "101/3"])
        #expect(result.sockets[7001]?.owner == "python3[100]")
        #expect(result.exitStatus == 3)
        Self.expectClean(kernel)
    }

    // MARK: a main thread that ends first

    /// The main thread (100) calls pthread_exit while thread 101 goes on to send on the inherited socket. The
    /// leader's descriptor table is gone (pidfd_getfd through it answers ESRCH, its /proc/PID/fd is empty), so the
    /// socket is asked about through the sending thread: a pidfd of that thread, or on a kernel without them
    /// (before 6.9) /proc/TID and the kernel's socket tables. The leader's end is reported last, with the status
    /// the process exits with.
    @Test(arguments: [true, false])
    func callsAfterTheMainThreadEndedAreAskedAboutThroughTheirThread(threadPidfds: Bool) throws {
        let send = SyscallRegisters.entry(.sendto, 3, 0x1000, 2, 0, 0x1100, 16)
        let kernel = Self.launched([
            .report(
                tid: 100, .event(PT.eventClone), at: 5,
                change: {
                    $0.eventMessages[100] = 101
                    $0.tgids[101] = 100
                }),
            .report(tid: 101, .signal(SIGSTOP), at: 6),
            .report(
                tid: 101, .seccomp, at: 10, regs: send,
                change: {
                    $0.leadersGone.insert(100)
                    $0.memory[0x1000] = Array("hi".utf8)
                    $0.memory[0x1100] = [2, 0, 0, 9, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]  // sockaddr_in 127.0.0.1:9
                    $0.sockets[7001] = .init(family: AF_INET, type: 2, local: SocketAddress(ip: .anyV4, port: 40001))
                }),
            .report(tid: 101, .syscall, at: 11, regs: send.returning(2)),
            .report(tid: 101, .exited(7), at: 20),
            .report(tid: 100, .exited(7), at: 20),
        ])
        kernel.threadPidfds = threadPidfds
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/101] sendto(fd=3, data=\"hi\"(2), addr=127.0.0.1:9) = 2 [10-11] fd=3 socket=7001 "
                    + "local=0.0.0.0:40001"
            ])
        #expect(result.exitStatus == 7)
        #expect(kernel.pidfdsOpened == (threadPidfds ? ["process 100", "thread 101"] : ["process 100"]))
        #expect(kernel.duplicated == (threadPidfds ? ["100/3", "100/3"] : []))
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "cont(signal: 0) 100", "cont(signal: 0) 101", "syscall(signal: 0) 101", "cont(signal: 0) 101",
            ])
        Self.expectClean(kernel)
    }

    /// pidfd_open(2) refused (a container's seccomp profile answers EPERM): the call is recorded all the same, its
    /// socket told apart through /proc/PID/fd and described from the kernel's tables, and no duplicate is asked for
    /// (pidfd_open is not tried again either).
    @Test func aRefusedPidfdStillRecordsTheCallsThroughProc() throws {
        let send = SyscallRegisters.entry(.sendto, 3, 0x1000, 2, 0, 0, 0)
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 10, regs: send, change: { $0.memory[0x1000] = Array("hi".utf8) }),
            .report(tid: 100, .syscall, at: 11, regs: send.returning(2)),
            .report(tid: 100, .seccomp, at: 12, regs: send),
            .report(tid: 100, .syscall, at: 13, regs: send.returning(2)),
            .report(tid: 100, .exited(0), at: 20),
        ])
        kernel.pidfdRefusal = Errno(rawValue: EPERM)
        let result = try Self.run(kernel)
        let described = "fd=3 socket=7001 local=127.0.0.1:40000 remote=127.0.0.1:49152 state=ESTABLISHED"
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] sendto(fd=3, data=\"hi\"(2)) = 2 [10-11] \(described)",
                "#2 python3[100/100] sendto(fd=3, data=\"hi\"(2)) = 2 [12-13] \(described)",
            ])
        #expect(kernel.pidfdsOpened == [])
        #expect(kernel.duplicated == [])
        Self.expectClean(kernel)
    }

    /// `trace -p` of a process whose main thread has already ended: it cannot be seized (a zombie), the other
    /// thread is, its sockets are learnt through it, and when it ends, the process has ended with its status.
    @Test func attachingAfterTheMainThreadEndedFollowsTheOthersToTheEnd() throws {
        let kernel = ScriptedKernel([
            .report(tid: 201, .event(PT.eventStop), at: 1),
            .report(tid: 201, .exited(7), at: 10),
        ])
        kernel.tgids = [200: 200, 201: 200]
        kernel.tasks[200] = [200, 201]
        kernel.comms[200] = "server"
        kernel.leadersGone = [200]
        kernel.files[200] = [3: .socket(9001)]
        kernel.sockets[9001] = .init(family: AF_INET, type: 1, local: Self.server, state: .listen)
        let result = try Self.run(kernel, attach: 200)
        var listener = SocketRecord(inode: 9001, family: AF_INET, type: 1, owner: "server[200]")
        listener.local = Self.server
        #expect(result.sockets == [9001: listener])
        #expect(result.exitStatus == 7)
        #expect(result.detached)
        #expect(kernel.pidfdsOpened == ["process 200", "thread 201"])
        #expect(
            kernel.log.map(\.description) == [
                "seize(options: \(Self.attachOptions)) 200", "seize(options: \(Self.attachOptions)) 201",
                "interrupt 201",
                "syscall(signal: 0) 201",
            ])
        Self.expectClean(kernel)
    }

    /// `syscall(-1)`: attach mode stops at every call, and a number no kernel knows (above Int.max as a signed
    /// register) is let through, not a trap.
    @Test func aCallNumberNoKernelKnowsIsLetThrough() throws {
        let unknown = SyscallRegisters(number: UInt64.max)
        let kernel = ScriptedKernel([
            .report(tid: 200, .event(PT.eventStop), at: 1),
            .report(tid: 200, .syscall, at: 2, regs: unknown),
            .report(tid: 200, .syscall, at: 3, regs: unknown.returning(-Int64(ENOSYS))),
            .report(tid: 200, .exited(0), at: 4),
        ])
        kernel.tgids = [200: 200]
        kernel.tasks[200] = [200]
        let result = try Self.run(kernel, attach: 200)
        #expect(result.calls.isEmpty)
        #expect(result.exitStatus == 0)
        #expect(
            kernel.log.map(\.description) == [
                "seize(options: \(Self.attachOptions)) 200", "interrupt 200", "syscall(signal: 0) 200",
                "syscall(signal: 0) 200", "syscall(signal: 0) 200",
            ])
        Self.expectClean(kernel)
    }

    // MARK: attaching where it cannot be done

    /// PTRACE_SEIZE answers EPERM for a zombie, for a process another tracer holds and for one we may not trace;
    /// each gets its own line.
    @Test(arguments: ["zombie", "traced", "forbidden", "gone"])
    func aRefusedAttachSaysWhy(_ why: String) throws {
        let kernel = ScriptedKernel([])
        kernel.comms = [1: "bash", 300: "server", 400: "strace"]
        if why != "gone" {
            kernel.tgids[300] = 300
            kernel.tasks[300] = [300]
        }
        switch why {
        case "zombie": kernel.leadersGone = [300]
        case "traced": kernel.tracers[300] = 400
        case "forbidden": kernel.forbidden = [300]
        default: break
        }
        #expect {
            try Self.run(kernel, attach: 300)
        } throws: { error in
            (error as? TraceError)?.description
                == [
                    "zombie":
                        "cannot attach to 300: it has already exited (a zombie its parent bash[1] has not collected "
                        + "yet); there is nothing left to trace",
                    "traced": "cannot attach to 300: it is already traced by strace[400]; a process can have only one "
                        + "tracer: stop that one first",
                    "forbidden": "cannot attach to 300: not permitted (another user's or a setuid process needs root; "
                        + "for your own, sysctl kernel.yama.ptrace_scope=0)",
                    "gone": "no process 300: No such process",
                ][why]
        }
        #expect(kernel.violations == [])
    }

    // MARK: interrupted calls

    /// A signal interrupts recvfrom; the tracer sees ERESTARTSYS at its exit stop, the signal is delivered, and the
    /// kernel runs recvfrom again: one call, from the first attempt to the end of the second.
    @Test func aCallTheKernelRestartsIsOneCallFromItsFirstAttempt() throws {
        let recv = SyscallRegisters.entry(.recvfrom, 3, 0x2000, 64)
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 10, regs: recv),
            .report(tid: 100, .syscall, at: 20, regs: recv.returning(-512)),
            .report(tid: 100, .signal(SIGALRM), at: 21),
            .report(tid: 100, .seccomp, at: 30, regs: recv),
            .report(
                tid: 100, .syscall, at: 40, regs: recv.returning(5),
                change: {
                    $0.memory[0x2000] = Array("hello".utf8)
                }),
            .report(tid: 100, .exited(0), at: 50),
        ])
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] recvfrom(fd=3, size=64, data=\"hello\"(5)) = 5 [10-40] fd=3 socket=7001 "
                    + "local=127.0.0.1:40000 remote=127.0.0.1:49152 state=ESTABLISHED"
            ])
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "syscall(signal: 0) 100", "cont(signal: 0) 100", "cont(signal: \(SIGALRM)) 100",
                "syscall(signal: 0) 100",
                "cont(signal: 0) 100",
            ])
        #expect(result.exitStatus == 0)
        #expect(result.detached == false)
        Self.expectClean(kernel)
    }

    /// The same interruption, but the program's handler has no SA_RESTART: it sees EINTR and goes on to close the
    /// socket. The recvfrom is recorded with EINTR, ending when the thread's next call began.
    @Test func aCallTheProgramSeesEndWithEINTRIsRecordedSoAtItsNextCall() throws {
        let recv = SyscallRegisters.entry(.recvfrom, 3, 0x2000, 64)
        let close = SyscallRegisters.entry(.close, 3)
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 10, regs: recv),
            .report(tid: 100, .syscall, at: 20, regs: recv.returning(-512)),
            .report(tid: 100, .signal(SIGALRM), at: 21),
            .report(tid: 100, .seccomp, at: 30, regs: close),
            .report(tid: 100, .syscall, at: 31, regs: close.returning(0), change: { $0.files[100]?[3] = nil }),
            .report(tid: 100, .exited(0), at: 50),
        ])
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] recvfrom(fd=3, size=64) = -EINTR [10-30] fd=3 socket=7001 local=127.0.0.1:40000 "
                    + "remote=127.0.0.1:49152",
                // The state just before close was ESTABLISHED, and nothing else holds the socket: close sends a FIN.
                "#2 python3[100/100] close(fd=3) = 0 [30-31] fd=3 socket=7001 local=127.0.0.1:40000 "
                    + "remote=127.0.0.1:49152 state=FIN_WAIT1",
            ])
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "syscall(signal: 0) 100", "cont(signal: 0) 100", "cont(signal: \(SIGALRM)) 100",
                "syscall(signal: 0) 100",
                "cont(signal: 0) 100",
            ])
        Self.expectClean(kernel)
    }

    // MARK: the seccomp filter injected for a new socket

    /// socket(2) returns descriptor 4, not yet in any filter: at its exit stop the thread is made to call
    /// seccomp(2). A signal arrives before that call runs; it is held while the thread runs on borrowed registers
    /// and raised once its own are back. A later socket on the same number needs no second filter.
    @Test func aSignalDuringTheFilterInjectionIsHeldAndRaisedAfterIt() throws {
        let socket = SyscallRegisters.entry(.socket, UInt64(AF_INET), 1, 0)
        let seccomp = SyscallRegisters(number: 317)
        let close = SyscallRegisters.entry(.close, 4)
        func made4(_ k: ScriptedKernel) {
            k.files[100]?[4] = .socket(7002)
            k.sockets[7002] = .init(family: AF_INET, type: 1, state: .closed)
        }
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 10, regs: socket),
            .report(tid: 100, .syscall, at: 11, regs: socket.returning(4), change: made4),
            .report(tid: 100, .signal(SIGALRM), at: 12),
            .report(tid: 100, .syscall, at: 13, regs: seccomp),
            .report(tid: 100, .syscall, at: 14, regs: seccomp.returning(0)),
            .report(tid: 100, .signal(SIGALRM), at: 15),
            .report(tid: 100, .seccomp, at: 20, regs: close),
            .report(tid: 100, .syscall, at: 21, regs: close.returning(0), change: { $0.files[100]?[4] = nil }),
            .report(tid: 100, .seccomp, at: 30, regs: socket),
            .report(tid: 100, .syscall, at: 31, regs: socket.returning(4), change: made4),
            .report(tid: 100, .exited(0), at: 40),
        ])
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] socket(domain=AF_INET, type=SOCK_STREAM) = 4 [10-11] fd=4 socket=7002 "
                    + "local=0.0.0.0:0 state=CLOSED",
                "#2 python3[100/100] close(fd=4) = 0 [20-21] fd=4 socket=7002 local=0.0.0.0:0 state=CLOSED",
                "#3 python3[100/100] socket(domain=AF_INET, type=SOCK_STREAM) = 4 [30-31] fd=4 socket=7002 "
                    + "local=0.0.0.0:0 state=CLOSED",
            ])
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "syscall(signal: 0) 100", "inject 100 [4]", "syscall(signal: 0) 100",
                // SIGALRM, held: the thread runs on into the injected call without it.
                "syscall(signal: 0) 100", "syscall(signal: 0) 100",
                "restore 100", "cont(signal: 0) 100", "tgkill(100, 100, \(SIGALRM))",
                "cont(signal: \(SIGALRM)) 100",
                "syscall(signal: 0) 100", "cont(signal: 0) 100",
                // Descriptor 4 is covered now: no second injection.
                "syscall(signal: 0) 100", "cont(signal: 0) 100",
            ])
        #expect(result.warnings == [])
        Self.expectClean(kernel)
    }

    /// The injected seccomp(2) fails (here EINVAL): the program goes on with its own registers and result, and the
    /// trace says which descriptor's bytes it will miss.
    @Test func aFilterInjectionTheKernelRefusesIsAWarning() throws {
        let socket = SyscallRegisters.entry(.socket, UInt64(AF_INET), 2, 0)
        let seccomp = SyscallRegisters(number: 317)
        let kernel = Self.launched([
            .report(tid: 100, .seccomp, at: 10, regs: socket),
            .report(
                tid: 100, .syscall, at: 11, regs: socket.returning(5),
                change: {
                    $0.files[100]?[5] = .socket(7003)
                    $0.sockets[7003] = .init(family: AF_INET, type: 2)
                }),
            .report(tid: 100, .syscall, at: 12, regs: seccomp),
            .report(tid: 100, .syscall, at: 13, regs: seccomp.returning(-Int64(EINVAL))),
            .report(tid: 100, .exited(0), at: 20),
        ])
        let result = try Self.run(kernel)
        #expect(
            result.calls.map(\.summary) == [
                "#1 python3[100/100] socket(domain=AF_INET, type=SOCK_DGRAM) = 5 [10-11] fd=5 socket=7003 local=0.0.0.0:0"
            ])
        #expect(
            result.warnings == [
                "python3: read/write/close on descriptor 5 are not traced (adding a seccomp filter failed: Invalid "
                    + "argument); their bytes are missing from the attribution"
            ])
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "syscall(signal: 0) 100", "inject 100 [5]", "syscall(signal: 0) 100", "syscall(signal: 0) 100",
                "restore 100", "cont(signal: 0) 100",
            ])
        Self.expectClean(kernel)
    }

    // MARK: Ctrl-C

    /// `trace -p`: both threads are seized and interrupted, the sockets already open are learnt, calls are seen at
    /// every entry and exit, and Ctrl-C interrupts each thread and releases it at its next stop, with the signal
    /// that stop was for (nothing the program was sent is lost).
    @Test func ctrlCInAttachModeDetachesEveryThreadAtItsNextStop() throws {
        let send = SyscallRegisters.entry(.sendto, 4, 0x3000, 5)
        let other = SyscallRegisters(number: 14)  // rt_sigprocmask: not a socket call
        let kernel = ScriptedKernel([
            .report(tid: 200, .event(PT.eventStop), at: 1),
            .report(tid: 201, .event(PT.eventStop), at: 1),
            .report(tid: 201, .syscall, at: 10, regs: send, change: { $0.memory[0x3000] = Array("hello".utf8) }),
            .report(tid: 201, .syscall, at: 11, regs: send.returning(5)),
            .report(tid: 200, .syscall, at: 12, regs: other),
            .report(tid: 200, .syscall, at: 13, regs: other.returning(0)),
            .stopRequest(StopRequest(forward: false, count: 1)),
            .report(tid: 200, .event(PT.eventStop), at: 20),
            .report(tid: 201, .signal(SIGUSR1), at: 20),
        ])
        kernel.tgids = [200: 200, 201: 200]
        kernel.tasks[200] = [200, 201]
        kernel.comms[200] = "server"
        kernel.files[200] = [0: .other, 3: .socket(9001), 4: .socket(9002)]
        kernel.sockets[9001] = .init(family: AF_INET, type: 1, local: Self.server, state: .listen)
        kernel.sockets[9002] = .init(
            family: AF_INET, type: 1, local: Self.server, remote: Self.client, state: .established)
        let result = try Self.run(kernel, attach: 200)
        #expect(
            result.calls.map(\.summary) == [
                "#1 server[200/201] sendto(fd=4, data=\"hello\"(5)) = 5 [10-11] fd=4 socket=9002 local=127.0.0.1:49152 "
                    + "remote=127.0.0.1:40000 state=ESTABLISHED"
            ])
        var listener = SocketRecord(inode: 9001, family: AF_INET, type: 1, owner: "server[200]")
        listener.local = Self.server
        var connection = SocketRecord(inode: 9002, family: AF_INET, type: 1, owner: "server[200]")
        connection.local = Self.server
        connection.remote = Self.client
        #expect(result.sockets == [9001: listener, 9002: connection])
        #expect(
            kernel.log.map(\.description) == [
                "seize(options: \(Self.attachOptions)) 200", "interrupt 200",
                "seize(options: \(Self.attachOptions)) 201", "interrupt 201",
                "syscall(signal: 0) 200", "syscall(signal: 0) 201",
                "syscall(signal: 0) 201", "syscall(signal: 0) 201", "syscall(signal: 0) 200", "syscall(signal: 0) 200",
                "interrupt 200", "interrupt 201",
                "detach(signal: 0) 200", "detach(signal: \(SIGUSR1)) 201",
            ])
        #expect(result.detached)
        #expect(result.exitStatus == nil)
        Self.expectClean(kernel)
    }

    /// A launched program got the terminal's Ctrl-C itself; a kill(1) aimed at packetflow is passed on, and a
    /// second request kills the program, whose status is then the trace's.
    @Test func ctrlCOnALaunchedProgramIsPassedOnAndASecondKillsIt() throws {
        let kernel = Self.launched([
            .stopRequest(StopRequest(forward: false, count: 1)),
            .stopRequest(StopRequest(forward: true, count: 1)),
            .stopRequest(StopRequest(forward: false, count: 2)),
            .report(tid: 100, .killed(by: SIGKILL), at: 10),
        ])
        let result = try Self.run(kernel)
        #expect(result.calls.isEmpty)
        #expect(
            kernel.log.map(\.description) == Self.launchRequests + [
                "kill(100, \(SIGINT))", "kill(100, \(SIGKILL))",
            ])
        #expect(result.exitStatus == 128 + SIGKILL)
        #expect(result.detached == false)
        Self.expectClean(kernel)
    }
}
