import Glibc
import Testing

@testable import SyscallTrace

/// The real ``LinuxKernel`` against a real traced child (ours, so no root is needed): the calls the scripted kernel
/// stands in for answer what the stop loop expects of them.
@Suite struct LinuxKernelTests {
    /// Waits for `pid` only: this process runs other tests' children too, which a wait for any child could reap.
    static func next(_ kernel: LinuxKernel, _ pid: Int32) -> WaitStatus? {
        while true {
            switch kernel.wait(pid) {
            case .interrupted: continue
            case .noChildren: return nil
            case .report(_, let status): return status
            }
        }
    }

    /// Resumes `pid` at each stop, delivering the signals it was sent (sh waits for SIGCHLD), until it exits.
    static func runToExit(_ kernel: LinuxKernel, _ pid: Int32) -> WaitStatus? {
        while let status = next(kernel, pid) {
            guard case .stopped(let signal, let event) = status else { return status }
            _ = kernel.ptrace(.cont(signal: event == 0 && signal != SIGTRAP ? signal : 0), pid)
        }
        return nil
    }

    /// PTRACE_GETEVENTMSG at a fork event names the child whose first stop then comes (the message is read into
    /// memory that is valid only inside the call's closure).
    @Test func theForkEventsMessageIsTheChildThatStopsNext() throws {
        let kernel = LinuxKernel()
        let spawned = kernel.spawnTraced(
            ["/bin/sh", "-c", "/bin/true & wait"], environment: ["PATH": "/usr/bin:/bin"],
            filter: LaunchFilter(always: [], gated: [], fds: []))
        let pid = try spawned.get()
        defer { _ = kernel.kill(pid, SIGKILL) }
        #expect(Self.next(kernel, pid) == .signal(SIGSTOP))
        #expect(kernel.ptrace(.setOptions(PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec), pid) == nil)
        _ = kernel.ptrace(.cont(signal: 0), pid)
        var child: Int32?
        while child == nil, let status = Self.next(kernel, pid) {
            let forks = [PT.eventFork, PT.eventVfork, PT.eventClone]
            if case .stopped(SIGTRAP, let event) = status, forks.contains(event) {
                child = kernel.eventMessage(pid).map { Int32(truncatingIfNeeded: $0) }
                #expect(kernel.status(child ?? 0)?.tgid == child, "a process of its own")
                #expect(kernel.status(child ?? 0)?.parent == pid)
            }
            _ = kernel.ptrace(.cont(signal: 0), pid)
        }
        let forked = try #require(child, "sh forked, and the event said which child")
        #expect(forked != pid && forked > 0)
        defer { _ = kernel.kill(forked, SIGKILL) }
        #expect(Self.next(kernel, forked) == .signal(SIGSTOP), "the child's first stop")
        _ = kernel.ptrace(.cont(signal: 0), forked)
        #expect(Self.runToExit(kernel, forked) == .exited(0))
        #expect(Self.runToExit(kernel, pid) == .exited(0))
    }

    /// PTRACE_GETEVENTMSG of a process that is not stopped for us is refused, not read as 0.
    @Test func anEventMessageThatCannotBeReadIsNil() {
        #expect(LinuxKernel().eventMessage(getpid()) == nil)
    }
}
