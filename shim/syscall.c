// SPDX-License-Identifier: MIT
/*
 * syscall(): the real call, except for the one libunwind makes to check
 * that an address is readable while the shim captures a stack.
 *
 * libunwind validates an address (for a frame it has no unwind info for,
 * such as _start or a thread's first frame) by writing one byte from it
 * into a pipe it keeps for that: syscall(SYS_write, pipe[1], addr, 1).
 * That pipe would hold two descriptors in the program's range for the
 * life of the process: the program's numbers would skip them, it would
 * run out of descriptors two early, and once it closed them (a daemon
 * closing every descriptor it did not open) and got them back for its own
 * files, libunwind would read from and write into those files.  So the
 * shim refuses libunwind that pipe (shim/fdcreate.c): its numbers stay
 * -1, and the write that should validate through it is answered here, by
 * reading the byte with process_vm_readv() from this process.  A page
 * found readable is cached by libunwind as before, so a stack costs the
 * check once per page, as it did with the pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

/*
 * Is the byte at addr readable?  1 (as the write of one byte would
 * return) or -1 with errno EFAULT.  Where process_vm_readv() is refused
 * (a seccomp filter), the write libunwind meant, into a pipe made and
 * closed at once: the program's dup2s are held back meanwhile, as for
 * every descriptor of the shim's own (ownfd.h).
 */
static long validate_read(const void *addr)
{
	char byte;
	struct iovec local = { &byte, 1 };
	struct iovec remote = { (void *)addr, 1 };
	long ret = REAL(syscall)(SYS_process_vm_readv, (long)getpid(), &local,
				 1L, &remote, 1L, 0L);
	if (ret == 1)
		return 1;
	if (ret < 0 && errno == EFAULT)
		return -1;
	int fds[2] = { -1, -1 };
	shim_own_begin();
	ret = REAL(pipe2)(fds, O_CLOEXEC | O_NONBLOCK);
	if (ret == 0) {
		ret = REAL(syscall)(SYS_write, (long)fds[1], addr, 1L);
		int saved_errno = errno;
		REAL(close)(fds[0]);
		REAL(close)(fds[1]);
		errno = saved_errno;
	}
	shim_own_end(-1);
	if (ret != 1)
		errno = EFAULT;
	return ret == 1 ? 1 : -1;
}

SHIM_API long syscall(long number, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	/*
	 * libunwind's validation write, into the pipe it was refused.  Its
	 * descriptor and count are ints: only the low 32 bits of each
	 * register are the caller's (the kernel reads them so too).
	 */
	if (number == SYS_write && (int)a[0] < 0 && (int)a[2] == 1 &&
	    shim_unwinder_call())
		return validate_read((const void *)a[1]);
	return REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
