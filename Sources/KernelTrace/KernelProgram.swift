import CKernelTrace
import CLibBPF
import Glibc
import Sockets
import SystemCalls

/// The BPF program loaded into the kernel and attached to its tracepoints, with the descriptors of its maps.
///
/// Everything it holds is a descriptor of this process: links, programs and maps go away when it is released, or
/// when the process dies however it dies (the kernel closes the descriptors), so a killed tracer leaves nothing
/// attached. Nothing is pinned in /sys/fs/bpf.
final class KernelProgram {
    private let image: UnsafeMutableRawBufferPointer
    private let object: OpaquePointer
    private var links: [OpaquePointer] = []
    let eventsFD: Int32
    let tasksFD: Int32
    let globalsFD: Int32

    /// The smallest kernel the program runs on: tp_btf (5.5), the ring buffer (5.8), task storage for tracing
    /// programs and bpf_get_current_task_btf (5.11), bpf_task_pt_regs (5.15).
    static let minimumKernel = (5, 15)

    init(noteFD: Int32?, ringBytes: Int) throws(KernelTraceUnavailable) {
        try Self.preflight()
        kt_libbpf_capture_messages()
        _ = Self.takeMessages()
        guard let bytes = Base64.decode(EmbeddedBPFObject.base64) else {
            throw .objectInvalid("the embedded base64 does not decode")
        }
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        image.copyBytes(from: bytes)
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        // The object's name prefixes its internal maps' names ("kt.rodata") as bpftool shows them.
        let opened = "kt".withCString { name in
            opts.object_name = name
            return bpf_object__open_mem(image.baseAddress, image.count, &opts)
        }
        guard let object = opened else {
            let e = errno
            image.deallocate()
            throw .objectInvalid(Self.lastMessage(Self.takeMessages()) ?? Errno(rawValue: e).message)
        }
        var links: [OpaquePointer] = []
        do throws(KernelTraceUnavailable) {
            try Self.configure(object, noteFD: noteFD, ringBytes: ringBytes)
            let err = bpf_object__load(object)
            if err != 0 { throw Self.diagnose(errno: -err, messages: Self.takeMessages()) }
            var program = bpf_object__next_program(object, nil)
            while let p = program {
                guard let link = bpf_program__attach(p) else {
                    throw .attachRefused(program: String(cString: bpf_program__name(p)), Errno(rawValue: errno))
                }
                links.append(link)
                program = bpf_object__next_program(object, p)
            }
        } catch {
            for link in links { bpf_link__destroy(link) }
            bpf_object__close(object)
            image.deallocate()
            throw error
        }
        self.image = image
        self.object = object
        self.links = links
        eventsFD = bpf_map__fd(bpf_object__find_map_by_name(object, "kt_events"))
        tasksFD = bpf_map__fd(bpf_object__find_map_by_name(object, "kt_tasks"))
        globalsFD = bpf_map__fd(bpf_object__find_map_by_name(object, ".bss"))
    }

    deinit {
        for link in links { bpf_link__destroy(link) }
        bpf_object__close(object)
        image.deallocate()
    }

    /// Detaches every program now (the maps stay readable until the object goes).
    func detach() {
        for link in links { bpf_link__destroy(link) }
        links = []
    }

    private static func configure(_ object: OpaquePointer, noteFD: Int32?, ringBytes: Int)
        throws(KernelTraceUnavailable)
    {
        guard let events = bpf_object__find_map_by_name(object, "kt_events"),
            let rodata = bpf_object__find_map_by_name(object, ".rodata")
        else { throw .objectInvalid("the object has no kt_events or .rodata map") }
        // A power of two of pages, as the ring buffer requires.
        var size = 1 << 16
        while size < ringBytes && size < 1 << 30 { size <<= 1 }
        if bpf_map__set_max_entries(events, UInt32(size)) != 0 { throw .objectInvalid("cannot size the ring buffer") }

        var config = kt_config()
        if let noteFD {
            config.note_fd = noteFD
            config.has_note_fd = 1
        }
        var st = stat()
        // Records name tasks by the pids of our pid namespace (the user's), translated in the kernel when it is not
        // the initial one (whose inode number is fixed: PROC_PID_INIT_INO).
        if stat("/proc/self/ns/pid", &st) == 0, st.st_ino != 0xEFFF_FFFC {
            config.pidns_dev = UInt64(st.st_dev)
            config.pidns_ino = UInt64(st.st_ino)
            config.translate_pids = 1
        }
        config.wakeup_bytes = UInt32(size / 4)
        var rodataSize = 0
        _ = bpf_map__initial_value(rodata, &rodataSize)
        guard rodataSize == MemoryLayout<kt_config>.size else {
            throw .objectInvalid(".rodata is \(rodataSize) bytes, kt_config \(MemoryLayout<kt_config>.size)")
        }
        if bpf_map__set_initial_value(rodata, &config, MemoryLayout<kt_config>.size) != 0 {
            throw .objectInvalid("cannot set the program's configuration")
        }
    }

    /// Creates the task storage entry that makes the program follow the task behind `pidfd` (and its children).
    /// `running`: the task runs already (attach) and may be inside a call, which is then recorded as it ends, as
    /// having started now.
    func register(pidfd: Int32, running: Bool = false) -> Errno? {
        var key = pidfd
        var state = kt_task_state()
        if running {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)  // bpf_ktime_get_ns's clock
            state.joining = 1
            state.start = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        }
        // BPF_NOEXIST: a task already followed (a thread listed twice while attaching) keeps its state.
        let rc = bpf_map_update_elem(tasksFD, &key, &state, UInt64(BPF_NOEXIST))
        return rc == 0 || errno == EEXIST ? nil : Errno(rawValue: errno)
    }

    /// The program's counters, call id and live-process count.
    func globals() -> kt_globals? {
        var key: UInt32 = 0
        var value = kt_globals()
        return bpf_map_lookup_elem(globalsFD, &key, &value) == 0 ? value : nil
    }

    // MARK: why it cannot load

    /// What can be told before loading anything: architecture, BTF, kernel version, capabilities, lockdown.
    static func preflight() throws(KernelTraceUnavailable) {
        #if !arch(x86_64)
            throw .unsupportedArchitecture
        #endif
        guard access("/sys/kernel/btf/vmlinux", R_OK) == 0 else { throw .noBTF }
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        if numbers.count == 2, (numbers[0], numbers[1]) < minimumKernel { throw .kernelTooOld(release: release) }
        let missing = missingCapabilities()
        if !missing.isEmpty { throw .missingCapabilities(missing: missing) }
        if let mode = lockdownMode(), mode == "confidentiality" { throw .lockdown(mode: mode) }
    }

    /// CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN which covers both, from the effective set.
    static func missingCapabilities() -> [String] {
        let status = ProcFiles.contents("/proc/self/status") ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let caps = UInt64(line.dropFirst(7).filter { !$0.isWhitespace }, radix: 16)
        else { return [] }  // cannot tell: let the kernel say
        func has(_ bit: Int) -> Bool { caps & (1 << UInt64(bit)) != 0 }
        if has(21) { return [] }  // CAP_SYS_ADMIN
        return [(39, "CAP_BPF"), (38, "CAP_PERFMON")].filter { !has($0.0) }.map(\.1)
    }

    /// The selected lockdown mode ("none [integrity] confidentiality" -> "integrity"), when securityfs shows it.
    static func lockdownMode() -> String? {
        guard let text = ProcFiles.contents("/sys/kernel/security/lockdown"),
            let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]")
        else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// Turns a failed load into its reason: bpf(2) refused outright, or one program refused by the verifier.
    static func diagnose(errno e: Int32, messages: String) -> KernelTraceUnavailable {
        let program = failedProgram(in: messages)
        if e == EPERM || e == ENOSYS, program == nil || !messages.contains("processed ") {
            // No verifier ran: the call itself was refused (libbpf's first call loads a trivial program).
            let missing = missingCapabilities()
            if !missing.isEmpty { return .missingCapabilities(missing: missing) }
            if let mode = lockdownMode(), mode == "confidentiality" { return .lockdown(mode: mode) }
            return .bpfRefused(Errno(rawValue: e))
        }
        if messages.contains("Lockdown") || messages.contains("cannot use helper bpf_probe_read") {
            return .lockdown(mode: lockdownMode() ?? "confidentiality")
        }
        return .programRejected(
            program: program ?? "?", reason: verifierReason(in: messages) ?? Errno(rawValue: e).message)
    }

    /// "libbpf: prog 'kt_sys_enter': failed to load: -13" -> "kt_sys_enter".
    static func failedProgram(in messages: String) -> String? {
        for line in messages.split(separator: "\n").reversed() {
            guard line.contains("failed to load"), let start = line.firstRange(of: "prog '") else { continue }
            let rest = line[start.upperBound...]
            if let close = rest.firstIndex(of: "'") { return String(rest[..<close]) }
        }
        return nil
    }

    /// The verifier's complaint: the last log line before its statistics ("processed N insns").
    static func verifierReason(in messages: String) -> String? {
        let lines = messages.split(separator: "\n").map { $0.trimmingCharacters(in: " \t") }
        guard let end = lines.lastIndex(where: { $0.hasPrefix("processed ") }) else { return lastMessage(messages) }
        return lines[..<end].last { !$0.isEmpty && !$0.hasPrefix(";") }.map(String.init)
    }

    static func lastMessage(_ messages: String) -> String? {
        messages.split(separator: "\n").last.map { String($0).replacingPrefix("libbpf: ", with: "") }
    }

    static func takeMessages() -> String {
        var buffer = [CChar](repeating: 0, count: 65536)
        let n = kt_libbpf_take_messages(&buffer, buffer.count)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return s
    }
}

extension String {
    func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}

/// RFC 4648 base64 (the embedded object's encoding), ignoring line breaks and spaces.
enum Base64 {
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 4 * 3)
        var buffer: UInt32 = 0
        var bits = 0
        for c in text.utf8 {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            case UInt8(ascii: "="), UInt8(ascii: "\n"), UInt8(ascii: " "): continue
            default: return nil
            }
            buffer = buffer << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
    }
}
