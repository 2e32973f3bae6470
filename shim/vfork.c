// SPDX-License-Identifier: MIT
/*
 * vfork, clone.  A child that shares the parent's memory (vfork, or clone
 * with CLONE_VM | CLONE_VFORK) runs the parent's copy of the shim, with
 * the calling thread's TLS, until it execs or exits: its calls (Python's
 * subprocess closes every fd with close_range there) are on the child's
 * fd table and must not touch the parent's registry.  The calling thread
 * is suspended meanwhile, so its shim_busy, which the child shares, is
 * set to SHIM_BUSY_VM_CHILD for the child's lifetime and restored when
 * the parent resumes: every wrapper then calls the real function only.
 *
 * vfork cannot be wrapped in C: the child would return from the wrapper
 * and reuse its stack frame, which the parent returns through later.  On
 * x86-64 it is a stub that keeps the return address in a register across
 * the system call, as glibc's own vfork does.  Elsewhere vfork is fork(),
 * which POSIX allows: the child gets its own memory.  posix_spawn's child
 * calls glibc's internal functions, not the wrappers: the wrapper only
 * forgets the files' flags, as vfork does.
 */
#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static __thread int vfork_saved_busy
	__attribute__((tls_model("initial-exec")));

/*
 * Before the child starts: the thread's calls are the child's from now.
 * The child holds every file of the parent (and may exec with those
 * without FD_CLOEXEC, or dup2 others onto them): their flags may change
 * behind the shim from now on (registry_files_flags_shared).
 */
__attribute__((used)) void shim_vfork_enter(void);
__attribute__((used)) void shim_vfork_enter(void)
{
	if (!shim_busy)
		registry_files_flags_shared();
	vfork_saved_busy = shim_busy;
	shim_busy = SHIM_BUSY_VM_CHILD;
}

/*
 * In the parent, once the child has exec'd or exited (or the call failed):
 * the thread's calls are the program's again.  ret is the system call's
 * result; returns it, or -1 with errno set for -errno.
 */
__attribute__((used)) long shim_vfork_leave(long ret);
__attribute__((used)) long shim_vfork_leave(long ret)
{
	shim_busy = vfork_saved_busy;
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

#if defined(__x86_64__)
/*
 * The child returns with 0 and the parent's shim_busy unchanged (the
 * parent restores it); the parent calls shim_vfork_leave.  The return
 * address lives in %rdi across the system call and is pushed back in each
 * process; the stack is 16-byte aligned at both calls.
 */
__asm__(".text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
	".cfi_startproc\n"
#ifdef __CET__
	"	endbr64\n"
#endif
	"	subq $8, %rsp\n"
	".cfi_adjust_cfa_offset 8\n"
	"	call shim_vfork_enter\n"
	"	addq $8, %rsp\n"
	".cfi_adjust_cfa_offset -8\n"
	"	popq %rdi\n"
	".cfi_adjust_cfa_offset -8\n"
	".cfi_register rip, rdi\n"
	"	movl $" SHIM_STR(SYS_vfork) ", %eax\n"
	"	syscall\n"
	"	pushq %rdi\n"
	".cfi_adjust_cfa_offset 8\n"
	".cfi_rel_offset rip, 0\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	movq %rax, %rdi\n"
	"	subq $8, %rsp\n"
	".cfi_adjust_cfa_offset 8\n"
	"	call shim_vfork_leave\n"
	"	addq $8, %rsp\n"
	".cfi_adjust_cfa_offset -8\n"
	"1:	ret\n"
	".cfi_endproc\n"
	".size vfork, .-vfork\n");
#else
SHIM_API pid_t vfork(void)
{
	return fork();
}
#endif

/*
 * posix_spawn, posix_spawnp: glibc's child (a vfork of its own, which no
 * wrapper sees) holds every file of the process; see shim_vfork_enter.
 * It also resets every caught signal to SIG_DFL: the checkpoint signal
 * the program ignores is ignored in the kernel meanwhile, so that the
 * child inherits SIG_IGN (shim_signal_spawn_begin, shim.h).
 */
SHIM_API int posix_spawn(pid_t *pid, const char *path,
			 const posix_spawn_file_actions_t *actions,
			 const posix_spawnattr_t *attr, char *const argv[],
			 char *const envp[])
{
	if (!shim_busy)
		registry_files_flags_shared();
	bool held = shim_signal_spawn_begin();
	int ret = REAL(posix_spawn)(pid, path, actions, attr, argv, envp);
	shim_signal_spawn_end(held);
	return ret;
}

SHIM_API int posix_spawnp(pid_t *pid, const char *file,
			  const posix_spawn_file_actions_t *actions,
			  const posix_spawnattr_t *attr, char *const argv[],
			  char *const envp[])
{
	if (!shim_busy)
		registry_files_flags_shared();
	bool held = shim_signal_spawn_begin();
	int ret = REAL(posix_spawnp)(pid, file, actions, attr, argv, envp);
	shim_signal_spawn_end(held);
	return ret;
}

/*
 * system, popen: glibc spawns their child internally (no wrapper sees it),
 * and it holds every file without FD_CLOEXEC: as posix_spawn.
 */
SHIM_API int system(const char *command)
{
	if (!shim_busy && command)
		registry_files_flags_shared();
	bool held = command && shim_signal_spawn_begin();
	int ret = REAL(system)(command);
	shim_signal_spawn_end(held);
	return ret;
}

SHIM_API FILE *popen(const char *command, const char *type)
{
	if (!shim_busy)
		registry_files_flags_shared();
	bool held = shim_signal_spawn_begin();
	FILE *f = REAL(popen)(command, type);
	shim_signal_spawn_end(held);
	return f;
}

typedef int (*clone_fn)(void *); /* the function a clone child runs */

SHIM_API int clone(clone_fn fn, void *stack, int flags, void *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	pid_t *parent_tid = va_arg(ap, pid_t *);
	void *tls = va_arg(ap, void *);
	pid_t *child_tid = va_arg(ap, pid_t *);
	va_end(ap);
	/* The child runs fn on its own stack and exits: a plain call will do. */
	bool vm_child = (flags & (CLONE_VM | CLONE_VFORK | CLONE_THREAD)) ==
			(CLONE_VM | CLONE_VFORK);
	if (vm_child)
		shim_vfork_enter();
	else if (!(flags & CLONE_THREAD) && !shim_busy)
		registry_files_flags_shared(); /* another process: see above */
	int ret = REAL(clone)(fn, stack, flags, arg, parent_tid, tls,
			      child_tid);
	if (vm_child) {
		int saved_errno = errno;
		shim_vfork_leave(0);
		errno = saved_errno;
	}
	return ret;
}
