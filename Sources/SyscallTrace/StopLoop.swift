import CTraceShims
import Glibc

extension Tracer {
    // MARK: the wait loop

    func loop() {
        var status: Int32 = 0
        while !threads.isEmpty || !unknownStops.isEmpty {
            let flag = traceInterrupt.load(ordering: .relaxed)
            if flag != 0 { handleInterrupt(flag) }
            let tid = waitpid(-1, &status, 0x4000_0000)
            if tid < 0 {
                if errno == EINTR { continue }
                break  // ECHILD: nothing left
            }
            handle(tid: tid, status: status)
        }
    }

    func handleInterrupt(_ flag: Int) {
        traceInterrupt.store(0, ordering: .relaxed)
        // After the command itself has exited, what is left are processes it started and left running (`sleep &`):
        // signalling the command does nothing then, so Ctrl-C (or SIGTERM) detaches from them, as strace does,
        // and they go on untraced.
        let commandGone = options.attach == nil && exitStatus != nil
        if options.attach != nil || commandGone {
            // Detach: each thread must be in a ptrace stop to be released, so interrupt them all and release each
            // at its next stop.
            detaching = true
            for (tid, thread) in threads where ctrace_ptrace(PT.interrupt, tid, 0, 0) != 0 {
                stoppedToDetach.insert(tid)
                _ = ctrace_tgkill(thread.tgid, tid, SIGSTOP)
            }
        } else if traceInterruptCount.load(ordering: .relaxed) >= 2 {
            kill(mainPid, SIGKILL)
        } else if flag == 2 {
            kill(mainPid, SIGINT)
        }
    }

    func resume(_ tid: Int32, signal: Int32 = 0, needExit: Bool = false) {
        releaseDuplicate()
        if threads[tid]?.injection != nil {
            // Mid-injection the thread runs on borrowed registers: go through the injected call's stops and hold
            // any signal until its own registers are back.
            if signal != 0 { threads[tid]?.injection?.signal = signal }
            _ = ctrace_ptrace(PT.syscall, tid, 0, 0)
            return
        }
        if detaching {
            _ = ctrace_ptrace(PT.detach, tid, 0, UInt(signal))
            threads[tid] = nil
            return
        }
        let request = !useSeccomp || needExit ? PT.syscall : PT.cont
        _ = ctrace_ptrace(request, tid, 0, UInt(signal))
    }

    func handle(tid: Int32, status: Int32) {
        // Every path resumes through resume() or cover(), which close it first; this is the backstop.
        defer { releaseDuplicate() }
        let low = status & 0x7f
        if low == 0 || (low != 0x7f) {
            // Exited or killed.
            if tid == mainPid {
                exitStatus = low == 0 ? (status >> 8) & 0xff : 128 + low
            }
            if let t = threads[tid], let pending = t.pending ?? t.interrupted {
                // Killed mid-call: keep the call, with no result.
                finish(tid: tid, pending: pending, regs: nil)
            }
            if let t = threads.removeValue(forKey: tid), t.tgid == tid, let p = processes.removeValue(forKey: tid),
                p.pidfd >= 0
            {
                Glibc.close(p.pidfd)
            }
            unknownStops.remove(tid)
            return
        }
        let sig = (status >> 8) & 0xff
        let event = status >> 16
        if threads[tid] == nil {
            // A new child's first stop can arrive before its parent's fork event; remember it.
            unknownStops.insert(tid)
            threads[tid] = ThreadState(tgid: Self.tgid(of: tid) ?? tid)
            let tgid = threads[tid]!.tgid
            if processes[tgid] == nil { processes[tgid] = ProcessState(comm: Self.comm(of: tgid)) }
            if sig == SIGSTOP && event == 0 || event == PT.eventStop {
                unknownStops.remove(tid)
                resume(tid)
                return
            }
        }
        switch (sig, event) {
        case (SIGTRAP, PT.eventSeccomp):
            syscallStop(tid: tid)
        case (SIGTRAP | 0x80, 0):
            syscallStop(tid: tid)
        case (SIGTRAP, PT.eventFork), (SIGTRAP, PT.eventVfork), (SIGTRAP, PT.eventClone):
            var msg: UInt = 0
            _ = ctrace_ptrace(PT.getEventMsg, tid, 0, UInt(bitPattern: withUnsafeMutablePointer(to: &msg) { $0 }))
            let child = Int32(truncatingIfNeeded: msg)
            let parentTgid = threads[tid]?.tgid ?? tid
            let childTgid = Self.tgid(of: child) ?? child
            if threads[child] == nil { threads[child] = ThreadState(tgid: childTgid) }
            threads[child]!.tgid = childTgid
            if childTgid != parentTgid {
                // A forked child's thread is the forking thread's copy, hook buffer included.
                threads[child]!.noteAddress = threads[tid]?.noteAddress
            }
            if childTgid != parentTgid, let parent = processes[parentTgid] {
                // A new process starts with a copy of its parent's descriptors.
                let copy = parent.copy()
                if let existing = processes[childTgid] { copy.pidfd = existing.pidfd }
                processes[childTgid] = copy
            }
            resume(tid)
        case (SIGTRAP, PT.eventExec):
            let tgid = threads[tid]?.tgid ?? tid
            if let p = processes[tgid] {
                p.comm = Self.comm(of: tgid)
                p.fds.afterExec { Self.fdEntry(pid: tgid, fd: $0) }
            }
            threads[tid]?.note = nil
            threads[tid]?.noteAddress = nil
            resume(tid)
        case (_, PT.eventStop):
            // Group stop (a real SIGSTOP) with PTRACE_SEIZE: stay stopped but listen; interrupt stop: go on.
            if detaching {
                resume(tid)
            } else if sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU {
                _ = ctrace_ptrace(PT.listen, tid, 0, 0)
            } else {
                resume(tid)
            }
        case (SIGSTOP, 0) where unknownStops.contains(tid):
            unknownStops.remove(tid)
            resume(tid)
        default:
            // A signal for the program: deliver it (but not the SIGSTOP that only brought it here to detach).
            let ours = sig == SIGSTOP && stoppedToDetach.remove(tid) != nil
            resume(tid, signal: ours ? 0 : sig)
        }
    }
}
