#!/usr/bin/env python3
"""Runs a command with some system calls refused, as a container's seccomp profile or an older kernel refuses them.

    deny-syscalls.py ERRNO CALL[,CALL...] -- COMMAND [ARGS...]

Docker's default profile answers EPERM to process_vm_readv, process_vm_writev, pidfd_getfd and kcmp for a
container without CAP_SYS_PTRACE; a kernel without them answers ENOSYS. It refuses bpf too (a container without
CAP_BPF or CAP_SYS_ADMIN), which is where `trace --engine auto` must fall back to ptrace. The filter (seccomp-bpf,
inherited by
every child) is installed with no_new_privs, then the command is exec'd. x86_64 only, like the tracer.
"""
import ctypes
import errno
import os
import struct
import sys

NUMBERS = {
    "bpf": 321, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_open": 434, "pidfd_getfd": 438,
}
AUDIT_ARCH_X86_64 = 0xC000003E
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_NO_NEW_PRIVS = 22, 2, 38


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--" or os.uname().machine != "x86_64":
        sys.exit("usage (x86_64): deny-syscalls.py ERRNO CALL[,CALL...] -- COMMAND [ARGS...]")
    code = getattr(errno, sys.argv[1])
    calls = [NUMBERS[name] for name in sys.argv[2].split(",")]
    # [load arch] [other arch: allow] [load nr] [JEQ call -> deny]... [allow] [deny]
    program = [(LD_W_ABS, 0, 0, 4), (JEQ_K, 1, 0, AUDIT_ARCH_X86_64), (RET_K, 0, 0, ALLOW), (LD_W_ABS, 0, 0, 0)]
    program += [(JEQ_K, len(calls) - i, 0, nr) for i, nr in enumerate(calls)]
    program += [(RET_K, 0, 0, ALLOW), (RET_K, 0, 0, ERRNO | code)]
    image = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    fprog = SockFprog(len(program), ctypes.addressof(image))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                                                                       ctypes.byref(fprog)) != 0:
        sys.exit("deny-syscalls.py: cannot install the filter: " + os.strerror(ctypes.get_errno()))
    os.execvp(sys.argv[4], sys.argv[4:])


main()
