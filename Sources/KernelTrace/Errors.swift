import Sockets
import SystemCalls

/// Why the eBPF engine cannot trace on this machine. Each case is a fact checked before or while loading the BPF
/// program, and its description is one line saying what is missing and what would provide it; the ptrace engine
/// needs none of it, so `--engine auto` falls back on any of these.
public enum KernelTraceUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    /// The program's system call numbers and registers are x86_64's.
    case unsupportedArchitecture
    /// No /sys/kernel/btf/vmlinux: the kernel was built without CONFIG_DEBUG_INFO_BTF, so tp_btf programs and
    /// CO-RE cannot work.
    case noBTF
    /// The kernel predates what the program uses (tp_btf, ring buffer, task storage, bpf_task_pt_regs: 5.15).
    case kernelTooOld(release: String)
    /// Neither CAP_BPF with CAP_PERFMON nor CAP_SYS_ADMIN.
    case missingCapabilities(missing: [String])
    /// Kernel lockdown in confidentiality mode refuses BPF reads of kernel memory.
    case lockdown(mode: String)
    /// bpf(2) itself was refused although the capabilities are there: a seccomp profile (containers) or a
    /// security module.
    case bpfRefused(Errno)
    /// The kernel's verifier refused a program: `reason` is the last line of its log.
    case programRejected(program: String, reason: String)
    /// A program loaded but could not be attached to its tracepoint.
    case attachRefused(program: String, Errno)
    /// The embedded object could not be opened (never expected from a good build).
    case objectInvalid(String)
    /// The launched or attached task could not be registered with the program (pidfd_open or the map update
    /// was refused); nothing ran untraced.
    case registrationRefused(Errno)

    public var description: String {
        switch self {
        case .unsupportedArchitecture:
            "the eBPF engine is built for x86_64 only"
        case .noBTF:
            "the kernel has no BTF (/sys/kernel/btf/vmlinux is missing: it needs a kernel built with "
                + "CONFIG_DEBUG_INFO_BTF=y)"
        case .kernelTooOld(let release):
            "kernel \(release) is too old for the eBPF engine (it needs 5.15 or later)"
        case .missingCapabilities(let missing):
            "loading BPF programs needs \(missing.joined(separator: " and ")) (or CAP_SYS_ADMIN): run as root"
        case .lockdown(let mode):
            "kernel lockdown (\(mode)) forbids BPF programs to read kernel memory"
        case .bpfRefused(let e):
            "the bpf(2) system call was refused (\(e.name)) although the capabilities are there: a seccomp profile "
                + "or a security module denies it (in a container: --privileged, or a profile that allows bpf)"
        case .programRejected(let program, let reason):
            "the kernel refused the BPF program \(program): \(reason)"
        case .attachRefused(let program, let e):
            "cannot attach the BPF program \(program) to its tracepoint: \(e.message)"
        case .objectInvalid(let why):
            "the embedded BPF object cannot be opened: \(why)"
        case .registrationRefused(let e):
            "cannot register the program with the BPF side (pidfd: \(e.message))"
        }
    }
}

/// Why a run of the eBPF engine failed after the program loaded.
public enum KernelTraceError: Error, Sendable, CustomStringConvertible {
    /// The engine cannot do it, but the ptrace engine might: nothing ran untraced.
    case unavailable(KernelTraceUnavailable)
    /// The run itself failed (no such process, fork failed): the same with any engine.
    case failed(String)

    public var description: String {
        switch self {
        case .unavailable(let why): why.description
        case .failed(let why): why
        }
    }
}
