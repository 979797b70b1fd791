import CLibBPF
import Foundation

/// The BPF programs process `pid` holds: its descriptors' fdinfo names their ids. Only that process's, so programs
/// that tests running meanwhile load (each `packetflow trace --engine ebpf` loads its own) are not counted.
public func bpfProgramIDs(heldBy pid: Int32) -> Set<UInt32> {
    var ids: Set<UInt32> = []
    for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo")) ?? [] {
        let info = (try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") where line.hasPrefix("prog_id:") {
            if let id = UInt32(line.dropFirst(8).trimmingCharacters(in: .whitespaces)) { ids.insert(id) }
        }
    }
    return ids
}

/// Whether the kernel still has BPF program `id` loaded (any process's): bpf(2) finds it by id until it is freed.
public func bpfProgramLoaded(_ id: UInt32) -> Bool {
    let fd = bpf_prog_get_fd_by_id(id)
    if fd >= 0 {
        close(fd)
        return true
    }
    return errno != ENOENT
}

/// True once none of `ids` is loaded; the kernel frees a program after its last descriptor closes, possibly a
/// moment later (an RCU grace period), so this looks again for up to 10 seconds.
public func bpfProgramsGone(_ ids: some Collection<UInt32>) -> Bool {
    for _ in 0..<500 {
        if ids.allSatisfy({ !bpfProgramLoaded($0) }) { return true }
        usleep(20_000)
    }
    return false
}
