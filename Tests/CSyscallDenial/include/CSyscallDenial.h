// Refuses system calls on the calling thread only, as a container's seccomp profile refuses them for a whole
// process: tests run the real code on that thread and see the real error. Test support, not part of the product.
#ifndef CSYSCALLDENIAL_H
#define CSYSCALLDENIAL_H

/// Installs a seccomp filter on this thread alone (no TSYNC) that makes each of `numbers` (x86_64 system call
/// numbers) fail with `error`. It cannot be removed: call it on a thread made for the purpose, which ends after.
/// Returns 0, or -1 with errno (ENOSYS on other architectures).
int syscall_denial_install(const int *numbers, int count, int error);

#endif
