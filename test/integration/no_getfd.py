#!/usr/bin/env python3
"""Run a command where pidfd_getfd(2) fails with EPERM, as it does under
Yama's ptrace_scope 1 for a process that is not a descendant.

usage: no_getfd.py CMD [ARG...]

A seccomp filter (installed with no_new_privs, no privilege needed) makes
pidfd_getfd return EPERM and lets every other system call through; then
CMD is executed with it.  x86-64 only (pidfd_getfd is 438 there).
"""
import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR_PIDFD_GETFD = 438
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
# BPF: ld, jeq, ret
LD_W_ABS = 0x20
JEQ_K = 0x15
RET_K = 0x06


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.uname().machine != "x86_64":
        print("no_getfd.py: x86-64 only", file=sys.stderr)
        return 2
    prog = b"".join([
        insn(LD_W_ABS, 0, 0, 4),                        # arch
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
        insn(LD_W_ABS, 0, 0, 0),                        # nr
        insn(JEQ_K, 0, 1, NR_PIDFD_GETFD),
        insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])
    buf = ctypes.create_string_buffer(prog)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                       ctypes.byref(fprog), 0, 0) != 0:
        print("no_getfd.py: seccomp: %s" % os.strerror(ctypes.get_errno()),
              file=sys.stderr)
        return 1
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
