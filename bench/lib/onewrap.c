// SPDX-License-Identifier: MIT
/*
 * The reference of figure 8 (bench_startup): a preloaded library of one
 * wrapper, close(), which only calls the real one (resolved by dlsym at its
 * first call).  What preloading any library costs a program's start-up.
 */
#include <dlfcn.h>
#include <unistd.h>

__attribute__((visibility("default"))) int close(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "close");
	return real(fd);
}
