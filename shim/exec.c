// SPDX-License-Identifier: MIT
/*
 * The exec family.  exec keeps an ignored signal ignored and resets a
 * caught one to SIG_DFL; where the program ignores the checkpoint signal,
 * the kernel holds the shim's handler for it, so the new program would
 * start with SIG_DFL.  Each wrapper puts SIG_IGN in the kernel just
 * before the real call, and the handler back if it fails
 * (shim_signal_exec_begin, shim.h).  Every name is wrapped: glibc's
 * execv, execvp, execl... call its execve internally, through no wrapper.
 * execl, execle and execlp gather their arguments as glibc does, into a
 * vector on the stack, and call the vector form's wrapper.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include "shim.h"

SHIM_API int execve(const char *path, char *const argv[], char *const envp[])
{
	bool changed = shim_signal_exec_begin();
	int ret = REAL(execve)(path, argv, envp);
	shim_signal_exec_end(changed);
	return ret;
}

SHIM_API int execv(const char *path, char *const argv[])
{
	bool changed = shim_signal_exec_begin();
	int ret = REAL(execv)(path, argv);
	shim_signal_exec_end(changed);
	return ret;
}

SHIM_API int execvp(const char *file, char *const argv[])
{
	bool changed = shim_signal_exec_begin();
	int ret = REAL(execvp)(file, argv);
	shim_signal_exec_end(changed);
	return ret;
}

SHIM_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
	bool changed = shim_signal_exec_begin();
	int ret = REAL(execvpe)(file, argv, envp);
	shim_signal_exec_end(changed);
	return ret;
}

SHIM_API int fexecve(int fd, char *const argv[], char *const envp[])
{
	bool changed = shim_signal_exec_begin();
	int ret = REAL(fexecve)(fd, argv, envp);
	shim_signal_exec_end(changed);
	return ret;
}

SHIM_API int execveat(int dirfd, const char *path, char *const argv[],
		      char *const envp[], int flags)
{
	if (!shim_real.execveat && (shim_resolve(), !shim_real.execveat)) {
		errno = ENOSYS; /* a libc before 2.34 */
		return -1;
	}
	bool changed = shim_signal_exec_begin();
	int ret = shim_real.execveat(dirfd, path, argv, envp, flags);
	shim_signal_exec_end(changed);
	return ret;
}

/*
 * How many arguments execl, execle or execlp has, arg0 included, before
 * the NULL, or -1 (E2BIG) past INT_MAX - 1, as glibc's; ap is left unread.
 */
static ptrdiff_t count_args(va_list ap)
{
	va_list count;
	ptrdiff_t argc = 1;
	va_copy(count, ap);
	while (va_arg(count, const char *)) {
		if (argc == INT_MAX - 1) {
			va_end(count);
			errno = E2BIG;
			return -1;
		}
		argc++;
	}
	va_end(count);
	return argc;
}

/* argv[1..argc] from ap, argv[argc] the NULL; ap left after the NULL. */
static void fill_args(char **argv, ptrdiff_t argc, va_list *ap)
{
	for (ptrdiff_t i = 1; i <= argc; i++)
		argv[i] = va_arg(*ap, char *);
}

/*
 * In an execl-family wrapper, after va_start(ap, arg): the vector NAME of
 * arg and the arguments after it, the NULL included, ap left after the
 * NULL; too many (E2BIG) returns -1 from the wrapper.
 */
#define EXECL_ARGV(name, arg, ap)                                             \
	ptrdiff_t name##_argc = count_args(ap);                               \
	if (name##_argc < 0) {                                                \
		va_end(ap);                                                   \
		return -1;                                                    \
	}                                                                     \
	char *name[name##_argc + 1];                                          \
	name[0] = (char *)(arg);                                              \
	fill_args(name, name##_argc, &(ap))

SHIM_API int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	EXECL_ARGV(argv, arg, ap);
	va_end(ap);
	return execv(path, argv);
}

SHIM_API int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	EXECL_ARGV(argv, arg, ap);
	va_end(ap);
	return execvp(file, argv);
}

SHIM_API int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	EXECL_ARGV(argv, arg, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}
