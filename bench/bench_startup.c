// SPDX-License-Identifier: MIT
/*
 * Figure 8: start-up cost of the preload.  fork, execve and waitpid of a
 * program that exits at once (/bin/true, or argv[2]) with LD_PRELOAD set to
 * the library (argv[1], or EPOLLCR_BENCH_LIB) against the same without it,
 * batches alternating round by round.  This program itself runs without
 * the preload.
 *
 * With a reference library (argv[3], or EPOLLCR_BENCH_REFLIB; `make bench`
 * builds bench/lib/onewrap.c, a close() that only calls the real one),
 * each round also runs a batch preloading it, and a second line gives its
 * ratio: what preloading any library costs, the floor of the first line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_ENV 4096 /* environment entries passed on */
#define WARMUP_ROUNDS 3

extern char **environ;

/* Run prog with envp, wait for it.  Returns 0, or -1 when it failed. */
static int run_once(const char *prog, char *const envp[])
{
	char *const argv[] = { (char *)prog, NULL };
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execve(prog, argv, envp);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Time a batch of runs; failures are counted into *errors. */
static uint64_t run_batch(const char *prog, char *const envp[],
			  unsigned batch, unsigned *errors)
{
	uint64_t t0 = bench_now_ns();
	for (unsigned i = 0; i < batch; i++)
		if (run_once(prog, envp) < 0)
			(*errors)++;
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	static char *env_raw[MAX_ENV + 1], *env_shim[MAX_ENV + 2],
		*env_ref[MAX_ENV + 2];
	const char *lib = argc > 1 ? argv[1] : getenv("EPOLLCR_BENCH_LIB");
	const char *prog = argc > 2 ? argv[2] : "/bin/true";
	const char *ref = argc > 3 ? argv[3] : getenv("EPOLLCR_BENCH_REFLIB");
	unsigned rounds = bench_rounds(60, 15), batch = bench_quick() ? 10 : 20;
	unsigned errors = 0;
	char preload[4200], preload_ref[4200], name[64], ref_name[96];
	struct bench_series s, s_ref;
	bool with_ref = false;

	snprintf(name, sizeof(name), "startup %s", prog);
	if (!lib || !*lib || access(lib, R_OK) != 0) {
		bench_report_skip(name, "no library (argv[1] or EPOLLCR_BENCH_LIB)");
		return 0;
	}
	if ((size_t)snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib) >=
	    sizeof(preload)) {
		bench_report_skip(name, "library path too long");
		return 0;
	}
	snprintf(ref_name, sizeof(ref_name), "startup %s one-wrapper", prog);
	if (ref && *ref) {
		if (access(ref, R_OK) != 0 ||
		    (size_t)snprintf(preload_ref, sizeof(preload_ref),
				     "LD_PRELOAD=%s", ref) >= sizeof(preload_ref))
			bench_report_skip(ref_name, "reference library unusable");
		else
			with_ref = true;
	}
	size_t n = 0;
	for (char **e = environ; *e && n < MAX_ENV; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) != 0) {
			env_raw[n] = *e;
			env_shim[n] = *e;
			env_ref[n] = *e;
			n++;
		}
	env_shim[n] = preload;
	env_ref[n] = preload_ref;
	if (bench_series_init(&s, rounds, batch) < 0 ||
	    (with_ref && bench_series_init(&s_ref, rounds, batch) < 0)) {
		bench_report_skip(name, "out of memory");
		return 0;
	}
	s.raw_label = "plain";
	s.shim_label = "preload";
	if (with_ref) {
		s_ref.raw_label = "plain";
		s_ref.shim_label = "one-wrapper";
	}

	for (unsigned r = 0; r < rounds + WARMUP_ROUNDS; r++) {
		uint64_t raw_ns, shim_ns, ref_ns = 0;
		/* The reference, when there is one, first or last in turn. */
		if (with_ref && r % 2)
			ref_ns = run_batch(prog, env_ref, batch, &errors);
		if (r % 2) {
			raw_ns = run_batch(prog, env_raw, batch, &errors);
			shim_ns = run_batch(prog, env_shim, batch, &errors);
		} else {
			shim_ns = run_batch(prog, env_shim, batch, &errors);
			raw_ns = run_batch(prog, env_raw, batch, &errors);
		}
		if (with_ref && !(r % 2))
			ref_ns = run_batch(prog, env_ref, batch, &errors);
		if (r >= WARMUP_ROUNDS) {
			bench_series_add(&s, raw_ns, shim_ns);
			if (with_ref)
				bench_series_add(&s_ref, raw_ns, ref_ns);
		}
	}
	bench_report_ratio(name, &s, 1.10,
			   errors ? "some runs failed" : "per fork+exec+wait");
	bench_series_free(&s);
	if (with_ref) {
		bench_report_ratio(ref_name, &s_ref, 1.10,
				   "the floor: a library whose close() only calls the real one");
		bench_series_free(&s_ref);
	}
	return 0;
}
