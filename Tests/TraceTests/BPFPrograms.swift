import CLibBPF
import Glibc

/// Whether the kernel still has BPF program `id` loaded (any process's): bpf(2) finds it by id until it is freed.
func bpfProgramLoaded(_ id: UInt32) -> Bool {
    let fd = bpf_prog_get_fd_by_id(id)
    if fd >= 0 {
        close(fd)
        return true
    }
    return errno != ENOENT
}
