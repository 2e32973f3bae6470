// SPDX-License-Identifier: MIT
/*
 * random_ops: a seeded pseudo-random sequence of epoll_ctl (valid and
 * invalid), dup/dup2/dup3/F_DUPFD, close/close_range, epoll_wait, fork and
 * target creation on a small fd range, with the shim's shadow registry
 * (epollcr_shadow_print) compared with the kernel's /proc/self/fdinfo at
 * checkpoints:
 *
 * - every epoll fd of the program is a "set" of the shadow, and the reverse;
 * - per epoll fd, every CERTAIN shadow watch (tfd, events | EPOLLERR |
 *   EPOLLHUP, data) is a kernel `tfd:` line (EPOLLWAKEUP ignored on both
 *   sides: dropped without CAP_BLOCK_SUSPEND; a fired EPOLLONESHOT watch may
 *   show only its private bits), and every kernel line is a shadow watch,
 *   certain or uncertain;
 * - every "fd N" the shadow names holds the watched file, by
 *   kcmp(KCMP_EPOLL_TFD).
 *
 * A forked child runs a few operations on the shared sets, checks its own
 * shadow strictly, and exits.  Sets the child changed (ctl or wait) cannot
 * be known to the parent's shim: they are "tainted" and skipped by the
 * parent's checks (counted in the summary).
 *
 * Usage: random_ops [-m] [-B] [-s] [-n OPS] [-i INTERVAL] [-t SECONDS] SEED
 *   -m  self-test: compare the kernel with the program's own model of it
 *       (printed in the shadow's format) instead of the shim's registry
 *   -B  with -m: corrupt the model now and then (the check must fail)
 *   -s  strict: no fork and no fd the shim cannot see created (pidfd,
 *       memfd), so nothing may be uncertain or shared in the shadow
 * Exit: 0 all checks passed, 1 a check failed, 2 usage or set-up error,
 * 77 epollcr_shadow_print is absent (the shim is not preloaded).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "fdinfo_util.h"

#define FD_FIRST 3		/* lowest fd number the operations use */
#define FD_SPAN 48		/* operations use FD_FIRST .. +FD_SPAN-1 */
#define FD_TABLE 256		/* fds the model tracks; above: closed */
#define MAX_OPEN 34		/* creation stops above this many open fds */
#define MAX_OPS 100000		/* bound of -n */
#define MAX_SERIALS (4 * MAX_OPS + 4096) /* files created in one run */
#define MAX_WATCHES 8192	/* watches the model holds */
#define MAX_KWATCH 2048		/* kernel watches read per epoll fd */
#define FDINFO_TEXT_MAX (256 * 1024) /* bytes of one epoll fd's fdinfo */
#define SHADOW_TEXT_MAX (16 * 1024 * 1024) /* bytes of one shadow print */
#define LIST_FDS_MAX 8192	/* open fds listed at a checkpoint */
#define CHILD_OPS 30		/* operations a forked child runs */
#define FORK_REPORT_MAX 1024	/* sets a child can report as changed */
#define LOG_RING 64		/* operations kept for the failure report */
#define LOG_LINE 200		/* bytes of one logged operation */

#define EP_PRIVATE_BITS (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
#define EXCLUSIVE_OK_BITS (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | \
			   EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

enum kind {
	K_NONE = 0,
	K_EPOLL,
	K_EVENTFD,
	K_PIPE_R,
	K_PIPE_W,
	K_UNIX,
	K_UDP,
	K_LISTEN,
	K_TCP,
	K_TIMERFD,
	K_SIGNALFD,
	K_PIDFD,	/* created by a syscall the shim does not wrap */
	K_MEMFD,	/* likewise, and not pollable */
	K_COUNT,
};

static const char *const kind_names[K_COUNT] = {
	"none", "epoll", "eventfd", "pipe-r", "pipe-w", "unix", "udp",
	"listen", "tcp", "timerfd", "signalfd", "pidfd", "memfd",
};

/* One open file description the program created (the model). */
struct mfile {
	uint8_t kind;
	bool alive;
	bool external;	/* the parent holds it too (in a forked child) */
	bool tainted;	/* a set a child changed: the shim cannot know */
	uint32_t refs;	/* fds of the table referring to it */
};

/* One watch of the model, keyed like the kernel's: (set, file, tfd). */
struct mwatch {
	uint32_t set, file;
	int tfd;
	uint32_t events;	/* as passed */
	uint64_t data;
};

/* What a forked child reports: the sets it changed. */
struct fork_report {
	unsigned nsets;
	bool overflow;
	uint32_t sets[FORK_REPORT_MAX];
};

/* A parsed shadow print. */
struct sh_set {
	int epfd;
	unsigned flags;
	bool incomplete, shared;
};

struct sh_watch {
	int epfd, tfd;
	uint32_t events;
	uint64_t data;
	bool certain;
	int fd;		/* "fd N", -1 when not given */
};

struct shadow {
	struct sh_set *sets;
	size_t nsets, cap_sets;
	struct sh_watch *watches;
	size_t nwatches, cap_watches;
};

static struct {
	uint64_t rng;
	bool model_mode, break_model, strict;
	bool in_child;
	int (*shadow_print)(int fd);
	uint32_t table[FD_TABLE];	/* fd -> file serial, 0: closed */
	struct mfile *files;		/* by serial */
	uint32_t last_serial;
	uint32_t fork_serial;		/* last serial before the fork */
	struct mwatch watches[MAX_WATCHES];
	unsigned nwatches;
	struct fork_report *report;	/* shared with a forked child */
	char log[LOG_RING][LOG_LINE];
	unsigned long nops;
	struct sockaddr_in listen_addr;
	/* counts for the summary */
	unsigned long checkpoints, sets_compared, compared, kcmps, forks,
		skipped_tainted;
	unsigned long ctl_ok, ctl_failed, uncertain_seen, disarmed_seen;
} g;

/* ---- small tools --------------------------------------------------- */

static uint64_t rnd64(void)
{
	uint64_t z = (g.rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rnd(unsigned n)
{
	return n ? (unsigned)(rnd64() % n) : 0;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);
	return n ? n : "?";
}

__attribute__((format(printf, 1, 2))) static void logop(const char *fmt, ...)
{
	va_list ap;
	char *line = g.log[g.nops % LOG_RING];
	int n = snprintf(line, LOG_LINE, "%s#%lu ", g.in_child ? "child " : "",
			 g.nops);
	va_start(ap, fmt);
	vsnprintf(line + n, LOG_LINE - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Log the outcome of a call: "-> ret" or "-> -1 ENAME". */
#define LOGRET(ret, err, fmt, ...)                                            \
	logop(fmt " -> %ld %s", __VA_ARGS__, (long)(ret),                     \
	      (ret) < 0 ? errname(err) : "")

static void dump_log(void)
{
	unsigned long first = g.nops >= LOG_RING ? g.nops - LOG_RING + 1 : 0;
	fprintf(stderr, "last operations:\n");
	for (unsigned long i = first; i <= g.nops; i++)
		if (g.log[i % LOG_RING][0])
			fprintf(stderr, "  %s\n", g.log[i % LOG_RING]);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the model ------------------------------------------------------ */

static uint32_t serial_at(int fd)
{
	return fd >= 0 && fd < FD_TABLE ? g.table[fd] : 0;
}

static enum kind kind_at(int fd)
{
	uint32_t s = serial_at(fd);
	return s ? (enum kind)g.files[s].kind : K_NONE;
}

static unsigned open_count(void)
{
	unsigned n = 0;
	for (int fd = 0; fd < FD_TABLE; fd++)
		n += g.table[fd] != 0;
	return n;
}

static void model_remove_watch(unsigned i)
{
	g.watches[i] = g.watches[--g.nwatches];
}

/* The last reference went: the kernel drops the file's watches. */
static void model_release(uint32_t s)
{
	g.files[s].alive = false;
	for (unsigned i = 0; i < g.nwatches;) {
		if (g.watches[i].file == s || g.watches[i].set == s)
			model_remove_watch(i);
		else
			i++;
	}
}

static void model_unbind(int fd)
{
	uint32_t s = serial_at(fd);
	if (!s)
		return;
	g.table[fd] = 0;
	if (--g.files[s].refs == 0 && !g.files[s].external)
		model_release(s);
}

static void model_bind(int fd, uint32_t s)
{
	if (fd < 0 || fd >= FD_TABLE)
		return;
	model_unbind(fd);
	g.table[fd] = s;
	g.files[s].refs++;
}

/*
 * A new file at fd.  Returns false (and closes it) when fd is outside the
 * table or the run created too many files.
 */
static bool model_new(int fd, enum kind kind)
{
	if (fd >= FD_TABLE || g.last_serial + 1 >= MAX_SERIALS) {
		close(fd);
		return false;
	}
	uint32_t s = ++g.last_serial;
	g.files[s] = (struct mfile){ .kind = (uint8_t)kind, .alive = true };
	model_bind(fd, s);
	return true;
}

/* newfd now refers to oldfd's file (dup family; newfd != oldfd). */
static void model_dup(int oldfd, int newfd)
{
	if (newfd >= FD_TABLE) {
		close(newfd);
		return;
	}
	uint32_t s = serial_at(oldfd);
	if (s)
		model_bind(newfd, s);
	else
		model_unbind(newfd);
}

static int model_find_watch(uint32_t set, uint32_t file, int tfd)
{
	for (unsigned i = 0; i < g.nwatches; i++)
		if (g.watches[i].set == set && g.watches[i].file == file &&
		    g.watches[i].tfd == tfd)
			return (int)i;
	return -1;
}

static void model_ctl(int epfd, int op, int tfd, const struct epoll_event *ev)
{
	uint32_t set = serial_at(epfd), file = serial_at(tfd);
	if (!set || !file)
		return;
	int i = model_find_watch(set, file, tfd);
	if (g.break_model && rnd(5) == 0 && op != EPOLL_CTL_ADD)
		return; /* -B: forget this MOD or DEL */
	if (op == EPOLL_CTL_ADD && i < 0) {
		if (g.nwatches == MAX_WATCHES) {
			fprintf(stderr, "random_ops: more than %d watches\n",
				MAX_WATCHES);
			exit(2);
		}
		g.watches[g.nwatches++] = (struct mwatch){
			.set = set, .file = file, .tfd = tfd,
			.events = ev->events, .data = ev->data.u64,
		};
	} else if (op == EPOLL_CTL_MOD && i >= 0) {
		g.watches[i].events = ev->events;
		g.watches[i].data = ev->data.u64;
	} else if (op == EPOLL_CTL_DEL && i >= 0) {
		model_remove_watch((unsigned)i);
	}
}

/* The lowest fd of the table that holds file s, or -1. */
static int model_fd_of(uint32_t s)
{
	for (int fd = 0; fd < FD_TABLE; fd++)
		if (g.table[fd] == s)
			return fd;
	return -1;
}

/* The model in the shadow's format (include/epollcr.h), for -m. */
static int model_print(int out)
{
	FILE *f = fdopen(dup(out), "w");
	if (!f)
		return -errno;
	for (int fd = 0; fd < FD_TABLE; fd++) {
		uint32_t set = g.table[fd];
		if (!set || g.files[set].kind != K_EPOLL)
			continue;
		fprintf(f, "set %d flags 0x0\n", fd);
		for (unsigned i = 0; i < g.nwatches; i++) {
			const struct mwatch *w = &g.watches[i];
			if (w->set != set)
				continue;
			fprintf(f, "watch %d %d events 0x%x data 0x%" PRIx64 " certain",
				fd, w->tfd, w->events, w->data);
			int holder = model_fd_of(w->file);
			if (holder >= 0)
				fprintf(f, " fd %d", holder);
			fputc('\n', f);
		}
	}
	return fclose(f) ? -EIO : 0;
}

/* ---- the shadow print, parsed --------------------------------------- */

static void shadow_free(struct shadow *sh)
{
	free(sh->sets);
	free(sh->watches);
	memset(sh, 0, sizeof(*sh));
}

static void *grow(void *array, size_t *cap, size_t count, size_t elem)
{
	if (count < *cap)
		return array;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *n = realloc(array, ncap * elem);
	if (!n) {
		fprintf(stderr, "random_ops: out of memory\n");
		exit(2);
	}
	*cap = ncap;
	return n;
}

/* Parse one "set" line; returns false when malformed. */
static bool parse_set(const char *line, struct shadow *sh)
{
	struct sh_set s = { 0 };
	int pos = 0;
	if (sscanf(line, "set %d flags %x%n", &s.epfd, &s.flags, &pos) != 2 ||
	    !pos)
		return false;
	char tok[32];
	for (const char *p = line + pos; *p;) {
		int used = 0;
		if (sscanf(p, " %31s%n", tok, &used) != 1)
			break;
		if (strcmp(tok, "incomplete") == 0)
			s.incomplete = true;
		else if (strcmp(tok, "shared") == 0)
			s.shared = true;
		else
			return false;
		p += used;
	}
	sh->sets = grow(sh->sets, &sh->cap_sets, sh->nsets, sizeof(s));
	sh->sets[sh->nsets++] = s;
	return true;
}

/* Parse one "watch" line; returns false when malformed. */
static bool parse_watch(const char *line, struct shadow *sh)
{
	struct sh_watch w = { .fd = -1 };
	char certainty[16];
	int pos = 0;
	if (sscanf(line, "watch %d %d events %x data %" SCNx64 " %15s%n",
		   &w.epfd, &w.tfd, &w.events, &w.data, certainty,
		   &pos) != 5 || !pos)
		return false;
	if (strcmp(certainty, "certain") == 0)
		w.certain = true;
	else if (strcmp(certainty, "uncertain") != 0)
		return false;
	const char *rest = line + pos;
	while (*rest == ' ')
		rest++;
	if (*rest) {
		int used = 0;
		if (sscanf(rest, "fd %d%n", &w.fd, &used) != 1)
			return false;
		for (rest += used; *rest == ' '; rest++)
			;
		if (*rest)
			return false;
	}
	sh->watches = grow(sh->watches, &sh->cap_watches, sh->nwatches,
			   sizeof(w));
	sh->watches[sh->nwatches++] = w;
	return true;
}

/* Parse a whole print (NUL-terminated text); false with a message. */
static bool shadow_parse(char *text, struct shadow *sh)
{
	unsigned lineno = 0;
	for (char *line = text; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		bool ok = strncmp(line, "set ", 4) == 0 ? parse_set(line, sh) :
			  strncmp(line, "watch ", 6) == 0 ?
							parse_watch(line, sh) :
							false;
		if (!ok) {
			fprintf(stderr, "shadow print line %u is malformed: \"%s\"\n",
				lineno, line);
			return false;
		}
		line = next;
	}
	return true;
}

/* Ask the shim (or, with -m, the model) for its view; NULL on failure. */
static char *shadow_text(void)
{
	int mfd = memfd_create("random_ops-shadow", MFD_CLOEXEC);
	if (mfd < 0) {
		perror("memfd_create");
		return NULL;
	}
	int ret = g.model_mode ? model_print(mfd) : g.shadow_print(mfd);
	char *text = NULL;
	struct stat st;
	if (ret != 0) {
		fprintf(stderr, "epollcr_shadow_print returned %d\n", ret);
	} else if (fstat(mfd, &st) || st.st_size > SHADOW_TEXT_MAX) {
		fprintf(stderr, "shadow print: unreadable or too large\n");
	} else if ((text = malloc((size_t)st.st_size + 1))) {
		ssize_t n = pread(mfd, text, (size_t)st.st_size, 0);
		if (n != st.st_size) {
			free(text);
			text = NULL;
		} else {
			text[n] = '\0';
		}
	}
	close(mfd);
	return text;
}

/* ---- the checkpoint --------------------------------------------------- */

static const struct sh_set *shadow_set(const struct shadow *sh, int epfd)
{
	for (size_t i = 0; i < sh->nsets; i++)
		if (sh->sets[i].epfd == epfd)
			return &sh->sets[i];
	return NULL;
}

static uint32_t norm_events(uint32_t ev)
{
	return ev & ~(uint32_t)EPOLLWAKEUP;
}

/* What the kernel shows for a watch added with events, armed. */
static uint32_t armed_events(uint32_t ev)
{
	return norm_events(ev | EPOLLERR | EPOLLHUP);
}

/* What it shows once a oneshot watch has fired (epoll-facts.md). */
static bool disarmed_match(uint32_t passed, uint32_t kernel)
{
	return (passed & EPOLLONESHOT) &&
	       norm_events(passed & EP_PRIVATE_BITS) == norm_events(kernel);
}

static void print_views(int epfd, const char *ktext, const struct shadow *sh)
{
	fprintf(stderr, "kernel /proc/self/fdinfo/%d:\n%s", epfd, ktext);
	fprintf(stderr, "shadow watches of epoll fd %d:\n", epfd);
	for (size_t i = 0; i < sh->nwatches; i++) {
		const struct sh_watch *w = &sh->watches[i];
		if (w->epfd == epfd)
			fprintf(stderr, "  tfd %d events 0x%x data 0x%" PRIx64 " %s fd %d\n",
				w->tfd, w->events, w->data,
				w->certain ? "certain" : "uncertain", w->fd);
	}
}

/*
 * Compare the shadow's watches of epfd with the kernel's.  Returns the
 * number of differences (each described on stderr).
 */
static unsigned compare_set(int epfd, const struct shadow *sh,
			    const char *where)
{
	static struct fdinfo_util_watch kw[MAX_KWATCH];
	static char ktext[FDINFO_TEXT_MAX];
	static bool kused[MAX_KWATCH];
	size_t nk = 0;
	unsigned errors = 0;

	int ret = fdinfo_util_epoll_watches(epfd, ktext, sizeof(ktext), kw,
					    MAX_KWATCH, &nk);
	if (ret) {
		fprintf(stderr, "%s: fdinfo of epoll fd %d: %s\n", where, epfd,
			strerror(-ret));
		return 1;
	}
	memset(kused, 0, nk * sizeof(kused[0]));

	/* Which kernel line each shadow watch matched, -1: none. */
	size_t nsw = 0;
	for (size_t i = 0; i < sh->nwatches; i++)
		nsw += sh->watches[i].epfd == epfd;
	int *match = calloc(nsw + 1, sizeof(*match));
	const struct sh_watch **sw = calloc(nsw + 1, sizeof(*sw));
	if (!match || !sw) {
		fprintf(stderr, "random_ops: out of memory\n");
		exit(2);
	}
	nsw = 0;
	for (size_t i = 0; i < sh->nwatches; i++)
		if (sh->watches[i].epfd == epfd)
			sw[nsw++] = &sh->watches[i];

	/* Passes: certain exact, certain disarmed, uncertain either way. */
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < nsw; i++) {
			if (pass == 0)
				match[i] = -1;
			if (match[i] >= 0 || sw[i]->certain == (pass == 2))
				continue;
			for (size_t k = 0; k < nk; k++) {
				if (kused[k] || kw[k].tfd != sw[i]->tfd ||
				    kw[k].data != sw[i]->data)
					continue;
				uint32_t kev = norm_events(kw[k].events);
				bool exact = kev == armed_events(sw[i]->events);
				bool dis = disarmed_match(sw[i]->events, kev);
				if (pass == 0 ? exact : pass == 1 ? dis :
							(exact || dis)) {
					match[i] = (int)k;
					kused[k] = true;
					g.disarmed_seen += !exact;
					break;
				}
			}
		}
	}

	for (size_t i = 0; i < nsw; i++) {
		g.uncertain_seen += !sw[i]->certain;
		if (g.strict && !sw[i]->certain) {
			fprintf(stderr, "%s: epoll fd %d: -s: watch tfd %d data 0x%" PRIx64 " is uncertain although the shim saw every fd created\n",
				where, epfd, sw[i]->tfd, sw[i]->data);
			errors++;
		}
		if (match[i] < 0 && sw[i]->certain) {
			fprintf(stderr, "%s: epoll fd %d: the shadow has a certain watch tfd %d events 0x%x data 0x%" PRIx64 " that the kernel does not\n",
				where, epfd, sw[i]->tfd, sw[i]->events,
				sw[i]->data);
			errors++;
		}
		if (match[i] < 0 || sw[i]->fd < 0 || !sw[i]->certain)
			continue;
		/* "fd N": the nth watch under this tfd is the matched one. */
		unsigned nth = 0;
		for (int k = 0; k < match[i]; k++)
			nth += kw[k].tfd == sw[i]->tfd;
		g.kcmps++;
		int r = fdinfo_util_kcmp_tfd(epfd, sw[i]->tfd, nth, sw[i]->fd);
		if (r != 0) {
			fprintf(stderr, "%s: epoll fd %d: the shadow says fd %d holds the file watched as tfd %d (data 0x%" PRIx64 "); kcmp says %s\n",
				where, epfd, sw[i]->fd, sw[i]->tfd, sw[i]->data,
				r > 0 ? "another file" : strerror(-r));
			errors++;
		}
	}
	for (size_t k = 0; k < nk; k++) {
		g.compared++;
		if (!kused[k]) {
			fprintf(stderr, "%s: epoll fd %d: the kernel has watch tfd %d events 0x%x data 0x%" PRIx64 " that the shadow does not\n",
				where, epfd, kw[k].tfd, kw[k].events,
				kw[k].data);
			errors++;
		}
	}
	if (errors)
		print_views(epfd, ktext, sh);
	free(match);
	free(sw);
	return errors;
}

/* The program's fds against the kernel's fd table (the test's own books). */
static unsigned check_fd_table(const char *where)
{
	static int fds[LIST_FDS_MAX];
	static bool open_now[FD_TABLE];
	unsigned errors = 0;
	int n = fdinfo_util_list_fds(fds, LIST_FDS_MAX);
	if (n < 0) {
		fprintf(stderr, "%s: listing /proc/self/fd: %s\n", where,
			strerror(-n));
		return 1;
	}
	memset(open_now, 0, sizeof(open_now));
	for (int i = 0; i < n; i++) {
		int fd = fds[i];
		if (fd >= FD_TABLE)
			continue;
		open_now[fd] = true;
		if (fd >= FD_FIRST && !g.table[fd]) {
			fprintf(stderr, "%s: fd %d is open but the program did not open it\n",
				where, fd);
			errors++;
		}
	}
	for (int fd = FD_FIRST; fd < FD_TABLE; fd++) {
		uint32_t s = g.table[fd];
		if (!s)
			continue;
		int first = model_fd_of(s);
		if (!open_now[fd]) {
			fprintf(stderr, "%s: fd %d should be open\n", where, fd);
			errors++;
		} else if ((g.files[s].kind == K_EPOLL) !=
			   fdinfo_util_is_epoll(fd)) {
			fprintf(stderr, "%s: fd %d: epoll or not, the books disagree with the kernel\n",
				where, fd);
			errors++;
		} else if (first != fd && !fdinfo_util_same_file(first, fd)) {
			fprintf(stderr, "%s: fds %d and %d should share a file\n",
				where, first, fd);
			errors++;
		}
	}
	return errors;
}

/*
 * Compare the shadow with the kernel now.  Returns true when they agree;
 * otherwise describes every difference and the last operations on stderr.
 */
static bool checkpoint(const char *where)
{
	unsigned errors = check_fd_table(where);
	struct shadow sh = { 0 };
	char *text = shadow_text();

	g.checkpoints++;
	if (!text || !shadow_parse(text, &sh)) {
		errors++;
		goto out;
	}
	for (size_t i = 0; i < sh.nsets; i++) {
		const struct sh_set *s = &sh.sets[i];
		if (kind_at(s->epfd) != K_EPOLL) {
			fprintf(stderr, "%s: the shadow lists a set at fd %d, which is not an epoll fd of the program\n",
				where, s->epfd);
			errors++;
		}
		if (g.strict && s->shared) {
			fprintf(stderr, "%s: -s: the shadow says set %d is shared\n",
				where, s->epfd);
			errors++;
		}
		if (s->incomplete) {
			fprintf(stderr, "%s: the shadow says set %d is incomplete\n",
				where, s->epfd);
			errors++;
		}
	}
	for (size_t i = 0; i < sh.nwatches; i++) {
		if (!shadow_set(&sh, sh.watches[i].epfd)) {
			fprintf(stderr, "%s: shadow watch of epoll fd %d has no set line\n",
				where, sh.watches[i].epfd);
			errors++;
		}
	}
	for (int fd = FD_FIRST; fd < FD_TABLE; fd++) {
		if (kind_at(fd) != K_EPOLL)
			continue;
		if (!shadow_set(&sh, fd)) {
			fprintf(stderr, "%s: epoll fd %d is not in the shadow\n",
				where, fd);
			errors++;
		} else if (g.files[g.table[fd]].tainted) {
			g.skipped_tainted++;
		} else {
			g.sets_compared++;
			errors += compare_set(fd, &sh, where);
		}
	}
out:
	if (errors) {
		fprintf(stderr, "%s: %u differences after %lu operations (seed state %" PRIx64 ")\n",
			where, errors, g.nops, g.rng);
		dump_log();
		if (text && !g.model_mode)
			fprintf(stderr, "(the shadow print had %zu sets, %zu watches)\n",
				sh.nsets, sh.nwatches);
	}
	free(text);
	shadow_free(&sh);
	return errors == 0;
}

/* ---- operations ----------------------------------------------------- */

/* A random fd of the table with kind (K_NONE: any), or -1. */
static int pick_fd(enum kind kind)
{
	int cand[FD_TABLE], n = 0;
	for (int fd = FD_FIRST; fd < FD_TABLE; fd++)
		if (g.table[fd] && (kind == K_NONE || kind_at(fd) == kind))
			cand[n++] = fd;
	return n ? cand[rnd((unsigned)n)] : -1;
}

/* Mostly an open fd of kind, sometimes any number of the range. */
static int pick_fd_or_any(enum kind kind, unsigned percent_any)
{
	int fd = rnd(100) < percent_any ? -1 : pick_fd(kind);
	return fd >= 0 ? fd : FD_FIRST + (int)rnd(FD_SPAN);
}

static uint32_t random_events(void)
{
	static const uint32_t bits[] = {
		EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP, EPOLLRDNORM,
		EPOLLWRNORM, EPOLLERR, EPOLLHUP,
	};
	uint32_t ev = 0;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (rnd(3) == 0)
			ev |= bits[i];
	if (rnd(4) == 0)
		ev |= EPOLLET;
	if (rnd(4) == 0)
		ev |= EPOLLONESHOT;
	if (rnd(15) == 0)
		ev |= EPOLLWAKEUP;
	if (rnd(12) == 0) {
		ev |= EPOLLEXCLUSIVE;
		if (rnd(3))
			ev &= EXCLUSIVE_OK_BITS;
	}
	if (rnd(40) == 0)
		ev |= 1u << rnd(32);
	return ev;
}

static uint64_t random_data(void)
{
	switch (rnd(3)) {
	case 0:
		return rnd(64);
	case 1:
		return rnd64();
	default:
		return (uint64_t)(FD_FIRST + rnd(FD_SPAN));
	}
}

/* A child changed set s (ctl or wait): the parent's shim cannot know. */
static void child_touched(int epfd)
{
	uint32_t s = serial_at(epfd);
	if (!g.in_child || !s || s > g.fork_serial)
		return;
	struct fork_report *r = g.report;
	for (unsigned i = 0; i < r->nsets; i++)
		if (r->sets[i] == s)
			return;
	if (r->nsets < FORK_REPORT_MAX)
		r->sets[r->nsets++] = s;
	else
		r->overflow = true;
}

static void op_create(void)
{
	int fd = -1, p[2];
	unsigned what = rnd(100);

	if (open_count() >= MAX_OPEN) {
		logop("create skipped: %u fds open", open_count());
		return;
	}
	if (pick_fd(K_EPOLL) < 0 && rnd(4))
		what = 0;	/* no set left: most likely make one */
	if (what < 30) {
		fd = rnd(2) ? epoll_create1(rnd(2) ? EPOLL_CLOEXEC : 0) :
			      epoll_create(1 + (int)rnd(5));
		LOGRET(fd, errno, "%s", "epoll_create");
		if (fd >= 0)
			model_new(fd, K_EPOLL);
	} else if (what < 48) {
		fd = eventfd(rnd(2), EFD_NONBLOCK | (rnd(2) ? EFD_CLOEXEC : 0));
		LOGRET(fd, errno, "%s", "eventfd");
		if (fd >= 0)
			model_new(fd, K_EVENTFD);
	} else if (what < 58) {
		int ret = pipe2(p, O_NONBLOCK | (rnd(2) ? O_CLOEXEC : 0));
		LOGRET(ret, errno, "pipe2 [%d %d]", ret ? -1 : p[0],
		       ret ? -1 : p[1]);
		if (ret == 0) {
			model_new(p[0], K_PIPE_R);
			model_new(p[1], K_PIPE_W);
		}
	} else if (what < 66) {
		int ret = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				     p);
		LOGRET(ret, errno, "socketpair [%d %d]", ret ? -1 : p[0],
		       ret ? -1 : p[1]);
		if (ret == 0) {
			model_new(p[0], K_UNIX);
			model_new(p[1], K_UNIX);
		}
	} else if (what < 72) {
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		LOGRET(fd, errno, "%s", "socket udp");
		if (fd >= 0)
			model_new(fd, K_UDP);
	} else if (what < 76) {
		struct sockaddr_in a = {
			.sin_family = AF_INET,
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		};
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (bind(fd, (void *)&a, sizeof(a)) ||
				listen(fd, 64))) {
			close(fd);
			fd = -1;
		}
		LOGRET(fd, errno, "%s", "socket+bind+listen tcp");
		if (fd >= 0 && model_new(fd, K_LISTEN)) {
			socklen_t len = sizeof(g.listen_addr);
			getsockname(fd, (void *)&g.listen_addr, &len);
		}
	} else if (what < 82) {
		fd = timerfd_create(rnd(2) ? CLOCK_MONOTONIC : CLOCK_REALTIME,
				    TFD_NONBLOCK);
		LOGRET(fd, errno, "%s", "timerfd_create");
		if (fd >= 0)
			model_new(fd, K_TIMERFD);
	} else if (what < 86) {
		sigset_t mask;
		sigemptyset(&mask);
		sigaddset(&mask, SIGUSR1 + (int)rnd(2));
		fd = signalfd(-1, &mask, SFD_NONBLOCK);
		LOGRET(fd, errno, "%s", "signalfd");
		if (fd >= 0)
			model_new(fd, K_SIGNALFD);
	} else if (what < 93 && !g.strict) {
#ifdef SYS_pidfd_open
		fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#endif
		LOGRET(fd, errno, "%s", "pidfd_open (unwrapped)");
		if (fd >= 0)
			model_new(fd, K_PIDFD);
	} else if (!g.strict) {
		fd = memfd_create("random_ops", 0);
		LOGRET(fd, errno, "%s", "memfd_create (unwrapped)");
		if (fd >= 0)
			model_new(fd, K_MEMFD);
	}
}

/* A loopback connection to a listener of the table: two new fds. */
static void op_accept(void)
{
	int l = pick_fd(K_LISTEN);
	if (l < 0 || open_count() + 2 > MAX_OPEN) {
		logop("accept skipped");
		return;
	}
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	if (getsockname(l, (void *)&a, &len))
		return;
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c < 0)
		return;
	int ret = connect(c, (void *)&a, len);
	int err = errno;
	if (!model_new(c, K_TCP))
		return;
	/* Every fd is non-blocking: no operation may wait. */
	int s = rnd(2) ? accept4(l, NULL, NULL, SOCK_NONBLOCK) :
			 accept(l, NULL, NULL);
	if (s >= 0 && fcntl(s, F_SETFL, O_NONBLOCK)) {
		close(s);
		s = -1;
	}
	LOGRET(s, errno, "connect %d -> %d (%s), accept %d", c, ret,
	       ret ? errname(err) : "ok", l);
	if (s >= 0)
		model_new(s, K_TCP);
}

static void op_ctl(void)
{
	int op, epfd = rnd(10) ? pick_fd(K_EPOLL) : -1;
	if (epfd < 0)
		epfd = pick_fd_or_any(K_NONE, 30);
	unsigned what = rnd(100);
	int tfd = pick_fd_or_any(K_NONE, 6);
	struct epoll_event ev = { .events = random_events(),
				  .data.u64 = random_data() };
	struct epoll_event *evp = &ev;

	if (what < 50) {
		op = EPOLL_CTL_ADD;
	} else {
		op = what < 78 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
		/* Mostly a watch the kernel has, by its tfd. */
		static struct fdinfo_util_watch kw[MAX_KWATCH];
		static char text[FDINFO_TEXT_MAX];
		size_t nk = 0;
		if (rnd(4) && kind_at(epfd) == K_EPOLL &&
		    !fdinfo_util_epoll_watches(epfd, text, sizeof(text), kw,
					       MAX_KWATCH, &nk) && nk)
			tfd = kw[rnd((unsigned)nk)].tfd;
		if (op == EPOLL_CTL_DEL && rnd(2))
			evp = NULL;
	}
	if (what >= 98)
		op = rnd(2) ? 0 : 4;		/* unknown ops */
	else if (what >= 96 && op != EPOLL_CTL_DEL)
		evp = NULL;			/* EFAULT */
	int ret = epoll_ctl(epfd, op, tfd, evp);
	int err = errno;
	LOGRET(ret, err, "epoll_ctl(%d, %d, %d, ev 0x%x data 0x%" PRIx64 "%s)",
	       epfd, op, tfd, ev.events, ev.data.u64, evp ? "" : " NULL");
	if (ret == 0) {
		g.ctl_ok++;
		model_ctl(epfd, op, tfd, &ev);
		child_touched(epfd);
	} else {
		g.ctl_failed++;
	}
}

static void op_dup(void)
{
	int oldfd = pick_fd_or_any(K_NONE, 8);
	int newfd = FD_FIRST + (int)rnd(FD_SPAN), ret;
	unsigned what = rnd(5);
	const char *name;

	if (rnd(12) == 0)
		newfd = oldfd;
	switch (what) {
	case 0:
		name = "dup";
		ret = dup(oldfd);
		break;
	case 1:
		name = "dup2";
		ret = dup2(oldfd, newfd);
		break;
	case 2:
		name = "dup3";
		ret = dup3(oldfd, newfd, rnd(10) ? (rnd(2) ? O_CLOEXEC : 0) :
						   0x4000);
		break;
	case 3:
		name = "F_DUPFD";
		ret = fcntl(oldfd, F_DUPFD, newfd);
		break;
	default:
		name = "F_DUPFD_CLOEXEC";
		ret = fcntl(oldfd, F_DUPFD_CLOEXEC, newfd);
		break;
	}
	LOGRET(ret, errno, "%s(%d, %d)", name, oldfd, newfd);
	if (ret >= 0 && ret != oldfd)
		model_dup(oldfd, ret);
}

static void op_close(void)
{
	if (rnd(12) == 0) {
		unsigned first = FD_FIRST + rnd(FD_SPAN);
		unsigned last = first + rnd(5);
		int flags = rnd(4) == 0 ? CLOSE_RANGE_CLOEXEC : 0;
		if (rnd(20) == 0)
			flags = 0x40;			/* EINVAL */
		else if (rnd(20) == 0)
			last = first - 1;		/* EINVAL */
		else if (rnd(40) == 0)
			last = ~0U;
		int ret = close_range(first, last, flags);
		LOGRET(ret, errno, "close_range(%u, %u, 0x%x)", first, last,
		       flags);
		if (ret == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
			for (unsigned fd = first; fd <= last && fd < FD_TABLE;
			     fd++)
				model_unbind((int)fd);
		return;
	}
	int fd = pick_fd_or_any(K_NONE, 10);
	int ret = close(fd);
	LOGRET(ret, errno, "close(%d) %s", fd, kind_names[kind_at(fd)]);
	model_unbind(fd);
}

/* Make targets ready or not, and collect events (oneshots fire). */
static void op_io(void)
{
	int fd = pick_fd(K_NONE);
	uint64_t v = 1;
	char buf[64];
	long ret = -1;
	struct itimerspec its = { .it_value.tv_nsec = 1 };

	switch (rnd(4)) {
	case 0:
		if (kind_at(fd) == K_EVENTFD || kind_at(fd) == K_PIPE_W ||
		    kind_at(fd) == K_UNIX)
			ret = write(fd, &v, sizeof(v));
		else if (kind_at(fd) == K_TIMERFD)
			ret = timerfd_settime(fd, 0, &its, NULL);
		LOGRET(ret, errno, "make fd %d ready", fd);
		break;
	case 1:
		if (kind_at(fd) != K_EPOLL && kind_at(fd) != K_LISTEN &&
		    kind_at(fd) != K_MEMFD && fd >= 0)
			ret = read(fd, buf, sizeof(buf));
		LOGRET(ret, errno, "drain fd %d", fd);
		break;
	default: {
		struct epoll_event evs[8];
		int ep = pick_fd(K_EPOLL);
		if (ep < 0)
			return;
		ret = epoll_wait(ep, evs, 8, 0);
		LOGRET(ret, errno, "epoll_wait(%d)", ep);
		if (ret > 0)
			child_touched(ep);
		break;
	}
	}
}

static void op_random(bool may_fork);

/* The child's part of a fork: some operations, its own strict check. */
static void run_child(void)
{
	g.in_child = true;
	g.fork_serial = g.last_serial;
	for (uint32_t s = 1; s <= g.last_serial; s++)
		if (g.files[s].alive)
			g.files[s].external = true;
	for (unsigned i = 0; i < CHILD_OPS; i++) {
		g.nops++;
		op_random(false);
	}
	_exit(checkpoint("child checkpoint") ? 0 : 1);
}

static bool op_fork(void)
{
	memset(g.report, 0, sizeof(*g.report));
	fflush(stdout);
	fflush(stderr);
	g.rng ^= 0x5bd1e995;	/* the child takes another stream */
	pid_t pid = fork();
	if (pid == 0)
		run_child();
	g.rng ^= 0x1b873593;
	LOGRET(pid, errno, "%s", "fork");
	if (pid < 0)
		return true;
	g.forks++;
	int status = 0;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "forked child (pid %d) failed: status 0x%x\n",
			(int)pid, (unsigned)status);
		dump_log();
		return false;
	}
	for (unsigned i = 0; i < g.report->nsets; i++)
		g.files[g.report->sets[i]].tainted = true;
	if (g.report->overflow)
		for (uint32_t s = 1; s <= g.last_serial; s++)
			if (g.files[s].kind == K_EPOLL)
				g.files[s].tainted = true;
	logop("fork: child changed %u sets%s", g.report->nsets,
	      g.report->overflow ? " (and more)" : "");
	/* Mostly drop the tainted sets, so that checks stay strict. */
	if (rnd(4))
		for (int fd = 0; fd < FD_TABLE; fd++)
			if (g.table[fd] && g.files[g.table[fd]].tainted &&
			    close(fd) == 0)
				model_unbind(fd);
	return true;
}

static bool fork_pending;

static void op_random(bool may_fork)
{
	unsigned what = rnd(1000);
	/* Full: make room instead of creating or duplicating. */
	if (open_count() >= MAX_OPEN && (what < 160 || (what >= 620 &&
							  what < 780)))
		what = 800;
	if (what < 140)
		op_create();
	else if (what < 160)
		op_accept();
	else if (what < 620)
		op_ctl();
	else if (what < 780)
		op_dup();
	else if (what < 890)
		op_close();
	else if (what < 995 || !may_fork || g.strict)
		op_io();
	else
		fork_pending = true;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: random_ops [-m] [-B] [-s] [-n OPS] [-i INTERVAL] [-t SECONDS] SEED\n");
	exit(2);
}

static unsigned long number_arg(const char *s, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *end || !*s || v > max)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	unsigned long nops = 5000, interval = 25, seconds = 20, seed;
	int opt;

	while ((opt = getopt(argc, argv, "mBsn:i:t:")) != -1) {
		switch (opt) {
		case 'm':
			g.model_mode = true;
			break;
		case 'B':
			g.break_model = true;
			break;
		case 's':
			g.strict = true;
			break;
		case 'n':
			nops = number_arg(optarg, MAX_OPS);
			break;
		case 'i':
			interval = number_arg(optarg, MAX_OPS);
			break;
		case 't':
			seconds = number_arg(optarg, 3600);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || !interval)
		usage();
	seed = number_arg(argv[optind], ~0UL);
	g.rng = seed;

	*(void **)&g.shadow_print = dlsym(RTLD_DEFAULT, "epollcr_shadow_print");
	if (!g.shadow_print && !g.model_mode) {
		printf("random_ops: epollcr_shadow_print not found (shim not preloaded): skip\n");
		return 77;
	}
	g.files = calloc(MAX_SERIALS, sizeof(*g.files));
	g.report = mmap(NULL, sizeof(*g.report), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!g.files || g.report == MAP_FAILED) {
		perror("random_ops: set-up");
		return 2;
	}
	/* A write to a socket or pipe whose peer is gone must not kill. */
	signal(SIGPIPE, SIG_IGN);
	/* Start from a known table: nothing open in the range but 0-2. */
	close_range(FD_FIRST, FD_TABLE - 1, 0);

	double deadline = now() + (double)seconds;
	bool ok = true;
	for (g.nops = 1; g.nops <= nops && ok; g.nops++) {
		op_random(true);
		if (fork_pending) {
			fork_pending = false;
			ok = op_fork();
		}
		if (ok && g.nops % interval == 0) {
			char where[64];
			snprintf(where, sizeof(where), "checkpoint at op %lu",
				 g.nops);
			ok = checkpoint(where);
		}
		if (now() > deadline) {
			printf("random_ops: time limit reached after %lu operations\n",
			       g.nops);
			break;
		}
	}
	if (g.nops > nops)
		g.nops = nops;
	if (ok)
		ok = checkpoint("final checkpoint");
	if (ok) {
		/* Close everything: no set may remain in the shadow. */
		close_range(FD_FIRST, FD_TABLE - 1, 0);
		for (int fd = FD_FIRST; fd < FD_TABLE; fd++)
			model_unbind(fd);
		ok = checkpoint("after closing everything");
	}
	printf("random_ops seed %lu%s%s: %lu ops, %lu checkpoints, %lu sets and %lu kernel watches compared, %lu kcmp, %lu ctl ok, %lu ctl failed, %lu forks, %lu tainted-set skips, %lu uncertain, %lu disarmed: %s\n",
	       seed, g.model_mode ? " (model)" : "", g.strict ? " (strict)" : "",
	       g.nops, g.checkpoints,
	       g.sets_compared, g.compared, g.kcmps, g.ctl_ok, g.ctl_failed,
	       g.forks,
	       g.skipped_tainted, g.uncertain_seen, g.disarmed_seen,
	       ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
