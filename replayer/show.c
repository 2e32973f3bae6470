// SPDX-License-Identifier: MIT
/*
 * `epollcr show`: an image as text for people or as JSON for programs
 * (contract in docs/image-format.md).  Works on any model whose arrays
 * match their counts: ids that name nothing print as such, the nesting tree
 * prints every set once, so no image makes it loop or blow up.
 */
#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "show.h"

#define OUT_BUF_LEN 16384	   /* bytes buffered before a write(2) */
#define A2L_MAX_ADDRS 16384	   /* addresses given to one addr2line run */
#define A2L_OUTPUT_PER_ADDR 1024   /* output bytes allowed per address */
#define DM_MAX_NAMES 1024	   /* names given to one c++filt run */
#define TREE_MAX_DEPTH 64	   /* nesting levels printed at most */
#define FRAME_TEXT_LEN (2 * IMAGE_MAX_STRING + 64) /* one frame as text */

extern char **environ;

/* ---- output ------------------------------------------------------------- */

struct out {
	int fd;
	int err;		/* first write error, -errno */
	size_t len;
	char buf[OUT_BUF_LEN];
};

static void out_flush(struct out *o)
{
	size_t done = 0;

	while (done < o->len && !o->err) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			o->err = -errno;
		else if (n == 0)
			o->err = -EIO;
		else
			done += (size_t)n;
	}
	o->len = 0;
}

static void out_write(struct out *o, const void *p, size_t n)
{
	const char *s = p;

	while (n && !o->err) {
		if (o->len == OUT_BUF_LEN)
			out_flush(o);
		size_t k = OUT_BUF_LEN - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

static void out_puts(struct out *o, const char *s)
{
	out_write(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
out_printf(struct out *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		out_write(o, line, (size_t)n);
		return;
	}
	char *big = NULL;
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n >= 0)
		out_write(o, big, (size_t)n);
	free(big);
}

static void out_emit(void *ctx, const char *piece, size_t piece_len)
{
	out_write(ctx, piece, piece_len);
}

/* n bytes for a terminal, by the one rule of escape.h. */
static void out_text_bytes(struct out *o, const char *s, size_t n)
{
	escape_emit(s, n, 0, out_emit, o);
}

static void out_text(struct out *o, const char *s)
{
	if (s)
		out_text_bytes(o, s, strlen(s));
	else
		out_puts(o, "(none)");
}

/*
 * A JSON string of n bytes, by the one rule of escape.h: C1 and bidi
 * controls as \uXXXX, bytes that are not UTF-8 as \u00XX.
 */
static void out_json_bytes(struct out *o, const char *s, size_t n)
{
	out_puts(o, "\"");
	escape_emit(s, n, ESCAPE_JSON, out_emit, o);
	out_puts(o, "\"");
}

/* A JSON string, or null for NULL. */
static void out_json_str(struct out *o, const char *s)
{
	if (s)
		out_json_bytes(o, s, strlen(s));
	else
		out_puts(o, "null");
}

/* An fd number, or null for -1 (any negative value). */
static void out_json_fd(struct out *o, int64_t fd)
{
	if (fd < 0)
		out_puts(o, "null");
	else
		out_printf(o, "%" PRId64, fd);
}

static const char *json_bool(bool b)
{
	return b ? "true" : "false";
}

/* ---- names -------------------------------------------------------------- */

static const struct {
	uint32_t bit;
	const char *name;
} event_names[] = {
	{ EPOLLIN, "EPOLLIN" },		{ EPOLLPRI, "EPOLLPRI" },
	{ EPOLLOUT, "EPOLLOUT" },	{ EPOLLERR, "EPOLLERR" },
	{ EPOLLHUP, "EPOLLHUP" },	{ EPOLLRDNORM, "EPOLLRDNORM" },
	{ EPOLLRDBAND, "EPOLLRDBAND" }, { EPOLLWRNORM, "EPOLLWRNORM" },
	{ EPOLLWRBAND, "EPOLLWRBAND" }, { EPOLLMSG, "EPOLLMSG" },
	{ EPOLLRDHUP, "EPOLLRDHUP" },	{ EPOLLEXCLUSIVE, "EPOLLEXCLUSIVE" },
	{ EPOLLWAKEUP, "EPOLLWAKEUP" }, { EPOLLONESHOT, "EPOLLONESHOT" },
	{ EPOLLET, "EPOLLET" },
};

/* "EPOLLIN|EPOLLET", undefined bits as a trailing hex number, "0" for 0. */
static void format_events(uint32_t events, char *out, size_t len)
{
	size_t used = 0;
	uint32_t rest = events;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(event_names) / sizeof(event_names[0]);
	     i++) {
		if (!(events & event_names[i].bit))
			continue;
		rest &= ~event_names[i].bit;
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 used ? "|" : "", event_names[i].name);
	}
	if (rest || !events)
		snprintf(out + used, len - used, "%s0x%x", used ? "|" : "",
			 rest);
}

/* A constant and its name, for the tables below. */
struct const_name {
	uint32_t value;
	const char *name;
};

#define CONST_NAME(c) { (uint32_t)(c), #c }

static const struct const_name domain_names[] = {
	CONST_NAME(AF_UNIX),	CONST_NAME(AF_INET),   CONST_NAME(AF_INET6),
	CONST_NAME(AF_NETLINK), CONST_NAME(AF_PACKET),
};

static const struct const_name socktype_names[] = {
	CONST_NAME(SOCK_STREAM),    CONST_NAME(SOCK_DGRAM),
	CONST_NAME(SOCK_RAW),	    CONST_NAME(SOCK_RDM),
	CONST_NAME(SOCK_SEQPACKET), CONST_NAME(SOCK_DCCP),
	CONST_NAME(SOCK_PACKET),
};

static const struct const_name clock_names[] = {
	CONST_NAME(CLOCK_REALTIME),	  CONST_NAME(CLOCK_MONOTONIC),
	CONST_NAME(CLOCK_BOOTTIME),	  CONST_NAME(CLOCK_REALTIME_ALARM),
	CONST_NAME(CLOCK_BOOTTIME_ALARM),
};

/*
 * The name of value in the table of n entries, or "PREFIX<value>" written
 * into buf (len bytes) when the table has none.
 */
static const char *const_name(const struct const_name *table, size_t n,
			      uint32_t value, const char *prefix, char *buf,
			      size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].value == value)
			return table[i].name;
	snprintf(buf, len, "%s%u", prefix, value);
	return buf;
}

/* const_name() of a table given by name. */
#define CONST_NAME_OF(table, value, prefix, buf, len)                         \
	const_name(table, sizeof(table) / sizeof((table)[0]), value, prefix,  \
		   buf, len)

static const char *domain_name(uint32_t domain, char *buf, size_t len)
{
	return CONST_NAME_OF(domain_names, domain, "AF_", buf, len);
}

static const char *socktype_name(uint32_t type, char *buf, size_t len)
{
	return CONST_NAME_OF(socktype_names, type, "SOCK_", buf, len);
}

static const char *clock_name(uint32_t clockid, char *buf, size_t len)
{
	return CONST_NAME_OF(clock_names, clockid, "clock ", buf, len);
}

/* "SIGINT" for 1..31 where the C library knows it, else "SIG34". */
static const char *signal_name(int signo, char *buf, size_t len)
{
	const char *abbrev = signo < 32 ? sigabbrev_np(signo) : NULL;

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "SIG%d", signo);
	return buf;
}

static const char *severity_name(uint32_t severity)
{
	static const char *const names[] = { "info", "warning", "error" };

	return severity <= IMAGE_SEV_ERROR ? names[severity] : "unknown";
}

static const char *diag_code_name(uint32_t code)
{
	static const char *const names[] = {
		[IMAGE_DIAG_GENERIC] = "generic",
		[IMAGE_DIAG_UNSEEN_WATCH] = "unseen-watch",
		[IMAGE_DIAG_PHANTOM_WATCH] = "phantom-watch",
		[IMAGE_DIAG_STALE_TFD] = "stale-tfd",
		[IMAGE_DIAG_MISMATCH] = "mismatch",
		[IMAGE_DIAG_NO_PROC] = "no-proc",
		[IMAGE_DIAG_INCOMPLETE] = "incomplete",
		[IMAGE_DIAG_UNRESTORABLE] = "unrestorable",
	};

	return code <= IMAGE_DIAG_CODE_MAX ? names[code] : "unknown";
}

static const struct {
	uint32_t bit;
	const char *name;
} watch_flag_names[] = {
	{ IMAGE_W_KERNEL, "kernel" },
	{ IMAGE_W_SHADOW, "shadow" },
	{ IMAGE_W_DISARMED, "disarmed" },
	{ IMAGE_W_STALE, "stale" },
};

/*
 * A socket address for people: "127.0.0.1:80", "[::1]:80", a unix path,
 * "@name" for an abstract one, "(unnamed)"; raw bytes in hex otherwise.
 * Writes into out (at least INET6_ADDRSTRLEN + 16 bytes); returns the
 * number of bytes, which may include any byte of a unix path.
 */
static size_t format_sockaddr(const struct sockaddr_storage *ss,
			      uint32_t addr_len, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n = 0;

	if (addr_len >= sizeof(sa_family_t) && ss->ss_family == AF_INET &&
	    addr_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		n = snprintf(out, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (addr_len >= sizeof(struct sockaddr_in6) &&
		   ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		n = snprintf(out, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else if (addr_len >= sizeof(sa_family_t) &&
		   ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)ss;
		size_t plen = addr_len - offsetof(struct sockaddr_un, sun_path);

		if (plen > sizeof(un->sun_path))
			plen = sizeof(un->sun_path);
		if (!plen)
			return (size_t)snprintf(out, len, "(unnamed)");
		if (un->sun_path[0] == '\0') {
			out[0] = '@';
			memcpy(out + 1, un->sun_path + 1, plen - 1);
			return plen;
		}
		plen = strnlen(un->sun_path, plen);
		memcpy(out, un->sun_path, plen);
		return plen;
	} else {
		const uint8_t *b = (const uint8_t *)ss;

		n = snprintf(out, len, "%u bytes:", addr_len);
		for (uint32_t i = 0; i < addr_len && (size_t)n + 3 < len; i++)
			n += snprintf(out + n, len - (size_t)n, "%02x", b[i]);
	}
	return n > 0 ? (size_t)n : 0;
}

/* ---- indexes ------------------------------------------------------------ */

struct show_index {
	/* fds of target t: fd_list[fd_start[t] .. fd_start[t + 1]) */
	uint32_t *fd_start;
	uint32_t *fd_list;	/* indexes in img->fds, by target then number */
	/* watches of set s: w_list[w_start[s] .. w_start[s + 1]) */
	uint32_t *w_start;
	uint32_t *w_list;	/* indexes in img->watches, in image order */
	uint32_t *nparents;	/* per target: watches of sets on it */
};

static const struct image_target *target_of(const struct image *img,
					    uint32_t id)
{
	return image_target_by_id(img, id);
}

/* By target (ids that name nothing first, as slot 0), then fd number. */
static int cmp_fd_index(const void *a, const void *b, void *ctx)
{
	const struct image *img = ctx;
	const struct image_fd *x = &img->fds[*(const uint32_t *)a];
	const struct image_fd *y = &img->fds[*(const uint32_t *)b];
	uint32_t tx = x->target <= img->ntargets ? x->target : 0;
	uint32_t ty = y->target <= img->ntargets ? y->target : 0;

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static void index_free(struct show_index *ix)
{
	free(ix->fd_start);
	free(ix->fd_list);
	free(ix->w_start);
	free(ix->w_list);
	free(ix->nparents);
}

/*
 * Group fds by target and watches by set (ids that name nothing go in slot
 * 0, which nothing prints).  Returns 0 or -ENOMEM.
 */
static int index_build(const struct image *img, struct show_index *ix)
{
	uint32_t nt = img->ntargets;

	memset(ix, 0, sizeof(*ix));
	ix->fd_start = calloc((size_t)nt + 2, sizeof(uint32_t));
	ix->w_start = calloc((size_t)nt + 2, sizeof(uint32_t));
	ix->nparents = calloc((size_t)nt + 1, sizeof(uint32_t));
	ix->fd_list = calloc(img->nfds + 1, sizeof(uint32_t));
	ix->w_list = calloc(img->nwatches + 1, sizeof(uint32_t));
	if (!ix->fd_start || !ix->w_start || !ix->nparents || !ix->fd_list ||
	    !ix->w_list) {
		index_free(ix);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < img->nfds; i++)
		ix->fd_list[i] = i;
	qsort_r(ix->fd_list, img->nfds, sizeof(uint32_t), cmp_fd_index,
		(void *)img);
	for (uint32_t i = 0; i < img->nfds; i++) {
		uint32_t t = img->fds[i].target;
		ix->fd_start[(t <= nt ? t : 0) + 1]++;
	}
	for (uint32_t i = 0; i < img->nwatches; i++) {
		const struct image_watch *w = &img->watches[i];
		const struct image_target *t = target_of(img, w->target);

		ix->w_start[(w->set <= nt ? w->set : 0) + 1]++;
		if (t && t->kind == IMAGE_KIND_EPOLL)
			ix->nparents[w->target]++;
	}
	for (uint32_t t = 0; t <= nt; t++) {
		ix->fd_start[t + 1] += ix->fd_start[t];
		ix->w_start[t + 1] += ix->w_start[t];
	}
	uint32_t *fill = calloc((size_t)nt + 1, sizeof(uint32_t));
	if (!fill) {
		index_free(ix);
		return -ENOMEM;
	}
	memcpy(fill, ix->w_start, ((size_t)nt + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < img->nwatches; i++) {
		uint32_t s = img->watches[i].set;
		ix->w_list[fill[s <= nt ? s : 0]++] = i;
	}
	free(fill);
	return 0;
}

/* Lowest fd number of target id, or -1. */
static int64_t lowest_fd(const struct image *img, const struct show_index *ix,
			 uint32_t id)
{
	if (id == IMAGE_NONE || id > img->ntargets ||
	    ix->fd_start[id] == ix->fd_start[id + 1])
		return -1;
	return img->fds[ix->fd_list[ix->fd_start[id]]].fd;
}

/* ---- backtraces and addr2line ------------------------------------------ */

struct a2l_entry {
	uint32_t module;
	uint64_t offset;
	char *where;		/* "file:line" or NULL */
};

struct a2l {
	struct a2l_entry *e;
	size_t n;
};

static int cmp_a2l(const void *a, const void *b)
{
	const struct a2l_entry *x = a, *y = b;

	if (x->module != y->module)
		return x->module < y->module ? -1 : 1;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

static const char *a2l_lookup(const struct a2l *a, uint32_t module,
			      uint64_t offset)
{
	struct a2l_entry key = { .module = module, .offset = offset };
	const struct a2l_entry *e;

	if (!a || !a->n)
		return NULL;
	e = bsearch(&key, a->e, a->n, sizeof(*a->e), cmp_a2l);
	return e ? e->where : NULL;
}

static void a2l_free(struct a2l *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->e[i].where);
	free(a->e);
	a->e = NULL;
	a->n = 0;
}

/*
 * The module file opened for addr2line: without blocking (a FIFO or a
 * device named by an image must not hang show), a regular file, with the
 * ELF magic.  Returns the fd or -1.
 */
static int module_open(const char *path)
{
	unsigned char magic[SELFMAG];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
	    memcmp(magic, ELFMAG, SELFMAG)) {
		close(fd);
		return -1;
	}
	if (fd <= 3) {
		/* Not 3 itself: dup2 onto itself would keep close-on-exec. */
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);

		close(fd);
		fd = high;
	}
	return fd;
}

/*
 * The link-time address of the module's first byte: what dladdr's
 * dli_fbase corresponds to (0 for PIE and shared objects, 0x400000 for a
 * classic executable).  0 when the file is not a readable ELF64.
 */
static uint64_t elf_link_base(int fd)
{
	Elf64_Ehdr eh;
	uint64_t base = 0;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512)
		return 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    sizeof(ph))
			break;
		if (ph.p_type == PT_LOAD) {
			base = ph.p_vaddr & ~(uint64_t)0xfff;
			break;
		}
	}
	return base;
}

/* The end of the process's one budget for helper programs. */
static struct timespec tools_deadline;
static bool tools_started;

void show_tools_budget(int ms)
{
	clock_gettime(CLOCK_MONOTONIC, &tools_deadline);
	tools_deadline.tv_sec += ms / 1000;
	tools_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (tools_deadline.tv_nsec >= 1000000000L) {
		tools_deadline.tv_sec++;
		tools_deadline.tv_nsec -= 1000000000L;
	}
	tools_started = true;
}

static int64_t tools_ms_left(void)
{
	struct timespec now;

	if (!tools_started)
		show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(tools_deadline.tv_sec - now.tv_sec) * 1000 +
	       (tools_deadline.tv_nsec - now.tv_nsec) / 1000000;
}

/*
 * Run argv (no shell; argv[0] found in PATH), with module_fd (when >= 0)
 * as its fd 3, and return its output, NUL-terminated, or NULL when it
 * cannot run, fails, prints more than max_out bytes or outlives what is
 * left of the budget (then SIGKILL).
 */
static char *tool_run(char *const *argv, int module_fd, size_t max_out)
{
	posix_spawn_file_actions_t fa;
	char *out = NULL;
	size_t len = 0, cap = 0;
	bool ok = false;
	int pipefd[2], status;
	pid_t pid;

	if (tools_ms_left() <= 0 || pipe2(pipefd, O_CLOEXEC) < 0)
		return NULL;
	if (posix_spawn_file_actions_init(&fa))
		goto out_close_pipe;
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
	    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1) ||
	    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) ||
	    (module_fd >= 0 &&
	     posix_spawn_file_actions_adddup2(&fa, module_fd, 3)) ||
	    posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		goto out_close_pipe;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	pipefd[1] = -1;
	for (;;) {
		int64_t left = tools_ms_left();
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			char *grown;

			if (ncap > max_out + 1)
				ncap = max_out + 1;
			grown = ncap > cap ? realloc(out, ncap + 1) : NULL;
			if (!grown)
				break;
			out = grown;
			cap = ncap;
		}
		if (left <= 0)
			break;
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t k = read(pipefd[0], out + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			ok = k == 0;
			break;
		}
		len += (size_t)k;
		if (len > max_out)
			break;
	}
	if (!ok)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ok && (!WIFEXITED(status) || WEXITSTATUS(status)))
		ok = false;
out_close_pipe:
	close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (!ok) {
		free(out);
		return NULL;
	}
	out[len] = '\0';
	return out;
}

/*
 * Run `addr2line -e /dev/fd/3 -f -C ADDR...` on the module opened as
 * module_fd (the file checked, whatever its path names meanwhile).
 */
static char *a2l_run(int module_fd, const uint64_t *addrs, size_t n,
		     size_t max_out)
{
	char **argv = calloc(n + 6, sizeof(*argv));
	char *nums = malloc(n * 20), *out = NULL;

	if (argv && nums) {
		argv[0] = "addr2line";
		argv[1] = "-e";
		argv[2] = "/dev/fd/3";
		argv[3] = "-f";
		argv[4] = "-C";
		for (size_t i = 0; i < n; i++) {
			argv[5 + i] = nums + i * 20;
			snprintf(argv[5 + i], 20, "0x%" PRIx64, addrs[i]);
		}
		out = tool_run(argv, module_fd, max_out);
	}
	free(argv);
	free(nums);
	return out;
}

/* Store "file:line" of each entry of e[0..n) from addr2line's output. */
static void a2l_parse(char *text, struct a2l_entry *e, size_t n)
{
	char *lines[2];
	size_t i = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line && i < n;) {
		lines[0] = line;
		lines[1] = strtok_r(NULL, "\n", &save);
		if (!lines[1])
			return;
		char *disc = strstr(lines[1], " (discriminator");
		if (disc)
			*disc = '\0';
		if (strncmp(lines[1], "??", 2) && strlen(lines[1]) <= IMAGE_MAX_STRING)
			e[i].where = strdup(lines[1]);
		i++;
		line = strtok_r(NULL, "\n", &save);
	}
}

/*
 * file:line for every distinct (module, offset) of every backtrace, one
 * addr2line run per module (per A2L_MAX_ADDRS addresses), all within the
 * process's budget.  Anything that fails just leaves entries without a
 * location.
 */
static void a2l_build(const struct image *img, struct a2l *a)
{
	size_t total = 0, n = 0;

	memset(a, 0, sizeof(*a));
	for (uint32_t b = 0; b < img->nbacktraces; b++)
		total += img->backtraces[b].nframes;
	if (!total || !img->nmodules)
		return;
	a->e = calloc(total, sizeof(*a->e));
	if (!a->e)
		return;
	for (uint32_t b = 0; b < img->nbacktraces; b++) {
		const struct image_backtrace *bt = &img->backtraces[b];

		for (uint32_t f = 0; bt->frames && f < bt->nframes; f++) {
			const struct image_frame *fr = &bt->frames[f];

			if (fr->module == IMAGE_NONE ||
			    fr->module > img->nmodules)
				continue;
			a->e[n].module = fr->module;
			a->e[n++].offset = fr->offset;
		}
	}
	qsort(a->e, n, sizeof(*a->e), cmp_a2l);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || cmp_a2l(&a->e[u - 1], &a->e[i]))
			a->e[u++] = a->e[i];
	a->n = u;
	uint64_t *addrs = malloc(A2L_MAX_ADDRS * sizeof(*addrs));
	if (!addrs)
		return;
	for (size_t i = 0; i < a->n;) {
		uint32_t m = a->e[i].module;
		const char *path = img->modules[m - 1].path;
		size_t j = i;
		int fd;

		while (j < a->n && a->e[j].module == m)
			j++;
		fd = path ? module_open(path) : -1;
		if (fd < 0) {
			i = j;
			continue;
		}
		uint64_t base = elf_link_base(fd);
		while (i < j) {
			size_t k = j - i;

			if (k > A2L_MAX_ADDRS)
				k = A2L_MAX_ADDRS;
			/* Return addresses: the call is one byte before. */
			for (size_t x = 0; x < k; x++)
				addrs[x] = base + a->e[i + x].offset -
					   (a->e[i + x].offset ? 1 : 0);
			char *text = a2l_run(fd, addrs, k,
					     k * A2L_OUTPUT_PER_ADDR + 4096);
			if (text)
				a2l_parse(text, a->e + i, k);
			free(text);
			i += k;
		}
		close(fd);
	}
	free(addrs);
}

/* ---- C++ symbol names --------------------------------------------------- */

/* Mangled symbol -> demangled, sorted by mangled (pointers into the image). */
struct dm_entry {
	const char *mangled;
	char *plain;
};

struct demangled {
	struct dm_entry *e;
	size_t n;
};

static int cmp_dm(const void *a, const void *b)
{
	return strcmp(((const struct dm_entry *)a)->mangled,
		      ((const struct dm_entry *)b)->mangled);
}

/* A mangled C++ name: _Z then only [A-Za-z0-9_.$] (never an option). */
static bool dm_name_ok(const char *sym)
{
	if (!sym || strncmp(sym, "_Z", 2))
		return false;
	for (const char *p = sym; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
		      *p == '$'))
			return false;
	return true;
}

static const char *dm_lookup(const struct demangled *d, const char *symbol)
{
	struct dm_entry key = { .mangled = symbol };
	const struct dm_entry *e;

	if (!symbol || !d->n || strncmp(symbol, "_Z", 2))
		return symbol;
	e = bsearch(&key, d->e, d->n, sizeof(*d->e), cmp_dm);
	return e && e->plain ? e->plain : symbol;
}

static void dm_free(struct demangled *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].plain);
	free(d->e);
	d->e = NULL;
	d->n = 0;
}

/*
 * Demangle the C++ names (_Z...) of every frame with c++filt, names given
 * as arguments (DM_MAX_NAMES per run), within the process's budget.  A
 * name c++filt leaves alone, or any failure, keeps the mangled name.
 */
static void dm_build(const struct image *img, struct demangled *d)
{
	size_t total = 0, n = 0;
	char **argv;

	memset(d, 0, sizeof(*d));
	for (uint32_t b = 0; b < img->nbacktraces; b++)
		for (uint32_t f = 0; img->backtraces[b].frames &&
				     f < img->backtraces[b].nframes; f++) {
			const char *sym = img->backtraces[b].frames[f].symbol;

			total += dm_name_ok(sym);
		}
	if (!total || !(d->e = calloc(total, sizeof(*d->e))))
		return;
	for (uint32_t b = 0; b < img->nbacktraces; b++)
		for (uint32_t f = 0; img->backtraces[b].frames &&
				     f < img->backtraces[b].nframes; f++) {
			const char *sym = img->backtraces[b].frames[f].symbol;

			if (dm_name_ok(sym))
				d->e[n++].mangled = sym;
		}
	qsort(d->e, n, sizeof(*d->e), cmp_dm);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || cmp_dm(&d->e[u - 1], &d->e[i]))
			d->e[u++] = d->e[i];
	d->n = u;
	argv = calloc(DM_MAX_NAMES + 2, sizeof(*argv));
	if (!argv)
		return;
	argv[0] = "c++filt";
	for (size_t i = 0; i < d->n; i += DM_MAX_NAMES) {
		size_t k = d->n - i < DM_MAX_NAMES ? d->n - i : DM_MAX_NAMES;
		char *text, *save = NULL, *line;

		for (size_t x = 0; x < k; x++)
			argv[1 + x] = (char *)d->e[i + x].mangled;
		argv[1 + k] = NULL;
		text = tool_run(argv, -1, k * (IMAGE_MAX_STRING * 4 + 2));
		if (!text)
			continue;
		line = strtok_r(text, "\n", &save);
		for (size_t x = 0; x < k && line; x++) {
			if (strcmp(line, d->e[i + x].mangled))
				d->e[i + x].plain = strdup(line);
			line = strtok_r(NULL, "\n", &save);
		}
		free(text);
	}
	free(argv);
}

/*
 * One frame as "symbol+0xOFF (module)", "module+0xOFF" or "0xOFF", in buf
 * (FRAME_TEXT_LEN bytes).  Returns its length.
 */
static size_t format_frame(const struct image *img,
			   const struct image_frame *f, const char *symbol,
			   char *buf)
{
	const char *module = NULL;
	int n;

	if (f->module != IMAGE_NONE && f->module <= img->nmodules)
		module = img->modules[f->module - 1].path;
	if (!module && f->module != IMAGE_NONE)
		module = "?";
	if (symbol && module)
		n = snprintf(buf, FRAME_TEXT_LEN, "%s+0x%" PRIx64 " (%s)",
			     symbol, f->symbol_offset, module);
	else if (symbol)
		n = snprintf(buf, FRAME_TEXT_LEN, "%s+0x%" PRIx64, symbol,
			     f->symbol_offset);
	else if (module)
		n = snprintf(buf, FRAME_TEXT_LEN, "%s+0x%" PRIx64, module,
			     f->offset);
	else
		n = snprintf(buf, FRAME_TEXT_LEN, "0x%" PRIx64, f->offset);
	if (n < 0)
		return 0;
	return (size_t)n < FRAME_TEXT_LEN ? (size_t)n : FRAME_TEXT_LEN - 1;
}

static const struct image_backtrace *backtrace_of(const struct image *img,
						  uint32_t id)
{
	if (id == IMAGE_NONE || id > img->nbacktraces)
		return NULL;
	return &img->backtraces[id - 1];
}

/* ---- text --------------------------------------------------------------- */

struct text_ctx {
	struct out *o;
	const struct image *img;
	struct show_index ix;
	struct a2l a2l;
	struct demangled dm;	/* C++ names of the frames */
	char *frame;		/* FRAME_TEXT_LEN bytes */
};

static void text_backtrace(struct text_ctx *c, const char *title,
			   uint32_t id, const char *indent)
{
	const struct image_backtrace *bt = backtrace_of(c->img, id);

	if (id == IMAGE_NONE)
		return;
	out_printf(c->o, "%s%s:\n", indent, title);
	if (!bt) {
		out_printf(c->o, "%s  backtrace %u is not in the image\n",
			   indent, id);
		return;
	}
	for (uint32_t i = 0; bt->frames && i < bt->nframes; i++) {
		const struct image_frame *f = &bt->frames[i];
		size_t n = format_frame(c->img, f,
					dm_lookup(&c->dm, f->symbol), c->frame);
		const char *where = a2l_lookup(&c->a2l, f->module, f->offset);

		out_printf(c->o, "%s  #%u ", indent, i);
		out_text_bytes(c->o, c->frame, n);
		if (where) {
			out_puts(c->o, " at ");
			out_text(c->o, where);
		}
		out_puts(c->o, "\n");
	}
}

/* "fd 5 (cloexec), fd 9" or "no fd". */
static void text_fds(struct text_ctx *c, uint32_t id)
{
	const struct show_index *ix = &c->ix;

	if (id == IMAGE_NONE || id > c->img->ntargets ||
	    ix->fd_start[id] == ix->fd_start[id + 1]) {
		out_puts(c->o, "no fd");
		return;
	}
	for (uint32_t i = ix->fd_start[id]; i < ix->fd_start[id + 1]; i++) {
		const struct image_fd *f = &c->img->fds[ix->fd_list[i]];

		out_printf(c->o, "%sfd %d%s", i > ix->fd_start[id] ? ", " : "",
			   f->fd, f->fd_flags & FD_CLOEXEC ? " (cloexec)" : "");
	}
}

static void text_socket(struct text_ctx *c, const struct image_socket *s)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} flags[] = {
		{ IMAGE_SOCK_LISTENING, "listening" },
		{ IMAGE_SOCK_CONNECTED, "connected" },
		{ IMAGE_SOCK_REUSEADDR, "reuseaddr" },
		{ IMAGE_SOCK_REUSEPORT, "reuseport" },
		{ IMAGE_SOCK_BOUND, "bound" },
		{ IMAGE_SOCK_V6ONLY, "v6only" },
		{ IMAGE_SOCK_PAIR, "socketpair" },
	};
	char a[32], b[32], addr[IMAGE_MAX_SOCKADDR * 2 + 64];
	size_t n;

	out_printf(c->o, " %s %s protocol %u",
		   domain_name(s->domain, a, sizeof(a)),
		   socktype_name(s->type, b, sizeof(b)), s->protocol);
	if (s->addr_len) {
		n = format_sockaddr(&s->addr, s->addr_len, addr, sizeof(addr));
		out_puts(c->o, ", address ");
		out_text_bytes(c->o, addr, n);
	}
	if (s->peer_len) {
		n = format_sockaddr(&s->peer, s->peer_len, addr, sizeof(addr));
		out_puts(c->o, ", peer ");
		out_text_bytes(c->o, addr, n);
	}
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (s->flags & flags[i].bit)
			out_printf(c->o, ", %s", flags[i].name);
	if (s->backlog >= 0)
		out_printf(c->o, ", backlog %d", s->backlog);
	if (s->pair) {
		out_printf(c->o, ", other end target %u (", s->pair);
		text_fds(c, s->pair);
		out_puts(c->o, ")");
	}
	if (s->pending)
		out_printf(c->o, ", %u bytes pending", s->pending);
}

/* Nanoseconds as seconds with 9 decimals. */
static void text_ns(struct out *o, const char *what, uint64_t ns)
{
	out_printf(o, ", %s %" PRIu64 ".%09" PRIu64 "s", what,
		   ns / 1000000000u, ns % 1000000000u);
}

static void text_target_kind(struct text_ctx *c, const struct image_target *t)
{
	char buf[64];

	switch (t->kind) {
	case IMAGE_KIND_SOCKET:
		text_socket(c, &t->u.sock);
		break;
	case IMAGE_KIND_PIPE:
		out_printf(c->o, " %s end, ino %" PRIu64,
			   t->u.pipe.write_end ? "write" : "read",
			   t->u.pipe.ino);
		if (t->u.pipe.peer) {
			out_printf(c->o, ", peer target %u (", t->u.pipe.peer);
			text_fds(c, t->u.pipe.peer);
			out_puts(c->o, ")");
		}
		if (t->u.pipe.pending)
			out_printf(c->o, ", %u bytes pending",
				   t->u.pipe.pending);
		break;
	case IMAGE_KIND_EVENTFD:
		out_printf(c->o, " count %" PRIu64 "%s", t->u.efd.count,
			   t->u.efd.semaphore ? ", semaphore" : "");
		break;
	case IMAGE_KIND_TIMERFD:
		out_printf(c->o, " %s",
			   clock_name(t->u.tfd.clockid, buf, sizeof(buf)));
		text_ns(c->o, "value", t->u.tfd.value_ns);
		text_ns(c->o, "interval", t->u.tfd.interval_ns);
		out_printf(c->o, ", ticks %" PRIu64 "%s%s", t->u.tfd.ticks,
			   t->u.tfd.settime_flags & 1 ? ", abstime" : "",
			   t->u.tfd.settime_flags & 2 ? ", cancel-on-set" : "");
		break;
	case IMAGE_KIND_SIGNALFD:
		out_printf(c->o, " mask 0x%" PRIx64, t->u.sfd.mask);
		for (int s = 1; s <= 64; s++)
			if (t->u.sfd.mask & (1ull << (s - 1)))
				out_printf(c->o, " %s",
					   signal_name(s, buf, sizeof(buf)));
		break;
	case IMAGE_KIND_EPOLL:
		out_printf(c->o, " set, %u watches", t->u.ep.nwatches);
		break;
	default:
		break;
	}
}

static void text_target(struct text_ctx *c, uint32_t id, const char *indent)
{
	const struct image_target *t = target_of(c->img, id);

	out_printf(c->o, "%starget ", indent);
	if (!t) {
		out_puts(c->o, id ? "not in the image\n" : "unknown\n");
		return;
	}
	out_printf(c->o, "%u: %s", id, image_kind_name(t->kind));
	text_target_kind(c, t);
	out_puts(c->o, "; ");
	text_fds(c, id);
	out_puts(c->o, "; path ");
	out_text(c->o, t->path);
	out_printf(c->o, ", file flags 0x%x\n", t->file_flags);
}

static void text_watch(struct text_ctx *c, const struct image_watch *w)
{
	char ev[256];

	format_events(w->events, ev, sizeof(ev));
	out_printf(c->o, "  tfd %d: %s (0x%x), data 0x%" PRIx64 ", open_fd ",
		   w->tfd, ev, w->events, w->data);
	if (w->open_fd >= 0)
		out_printf(c->o, "%d", w->open_fd);
	else
		out_puts(c->o, "none");
	out_puts(c->o, " [");
	bool first = true;
	for (size_t i = 0; i < sizeof(watch_flag_names) /
				       sizeof(watch_flag_names[0]);
	     i++) {
		if (!(w->flags & watch_flag_names[i].bit))
			continue;
		out_printf(c->o, "%s%s", first ? "" : " ",
			   watch_flag_names[i].name);
		first = false;
	}
	out_puts(c->o, "]\n");
	text_target(c, w->target, "    ");
	text_backtrace(c, "added at", w->bt_add, "    ");
	text_backtrace(c, "last modified at", w->bt_mod, "    ");
}

static void text_sets(struct text_ctx *c)
{
	const struct image *img = c->img;

	for (uint32_t id = 1; id <= img->ntargets; id++) {
		const struct image_target *t = &img->targets[id - 1];
		uint32_t from = c->ix.w_start[id], to = c->ix.w_start[id + 1];

		if (t->kind != IMAGE_KIND_EPOLL)
			continue;
		out_printf(c->o, "\nepoll set %u: ", id);
		text_fds(c, id);
		out_printf(c->o, "; %u watch%s\n", to - from,
			   to - from == 1 ? "" : "es");
		for (uint32_t i = from; i < to; i++)
			text_watch(c, &img->watches[c->ix.w_list[i]]);
	}
}

static void text_tree_line(struct text_ctx *c, uint32_t id, unsigned depth,
			   bool again)
{
	int64_t fd = lowest_fd(c->img, &c->ix, id);

	out_printf(c->o, "%*sset %u", 2 + 2 * (int)depth, "", id);
	if (fd >= 0)
		out_printf(c->o, " (fd %" PRId64 ")", fd);
	else
		out_puts(c->o, " (no fd)");
	out_puts(c->o, again ? " (see above)\n" : "\n");
}

/*
 * The nesting tree: each set not nested anywhere, its nested sets
 * indented below.  Iterative; a set printed once is "see above" after, so
 * the output stays linear in sets + watches even for a cyclic model.
 */
static void text_tree(struct text_ctx *c)
{
	const struct image *img = c->img;
	struct frame {
		uint32_t id, next;
	} stack[TREE_MAX_DEPTH];
	bool *printed = calloc((size_t)img->ntargets + 1, sizeof(bool));
	bool any = false;

	if (!printed)
		return;
	out_puts(c->o, "\nnesting:\n");
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t root = 1; root <= img->ntargets; root++) {
			if (img->targets[root - 1].kind != IMAGE_KIND_EPOLL ||
			    printed[root] || (!pass && c->ix.nparents[root]))
				continue;
			unsigned depth = 0;
			any = true;
			printed[root] = true;
			text_tree_line(c, root, 0, false);
			stack[0] = (struct frame){ root, c->ix.w_start[root] };
			while (depth < TREE_MAX_DEPTH) {
				struct frame *f = &stack[depth];
				if (f->next >= c->ix.w_start[f->id + 1]) {
					if (!depth--)
						break;
					continue;
				}
				const struct image_watch *w =
					&img->watches[c->ix.w_list[f->next++]];
				const struct image_target *t =
					target_of(img, w->target);
				if (!t || t->kind != IMAGE_KIND_EPOLL)
					continue;
				text_tree_line(c, w->target, depth + 1,
					       printed[w->target]);
				if (printed[w->target])
					continue;
				printed[w->target] = true;
				/* too deep: what it holds starts a new tree */
				if (depth + 1 == TREE_MAX_DEPTH)
					continue;
				stack[++depth] = (struct frame){
					w->target, c->ix.w_start[w->target]
				};
			}
		}
	}
	if (!any)
		out_puts(c->o, "  (no epoll sets)\n");
	free(printed);
}

static void text_diags(struct text_ctx *c)
{
	const struct image *img = c->img;

	out_printf(c->o, "\ndiagnostics: %u\n", img->ndiags);
	for (uint32_t i = 0; i < img->ndiags; i++) {
		const struct image_diag *d = &img->diags[i];

		out_printf(c->o, "  %s (%s)", severity_name(d->severity),
			   diag_code_name(d->code));
		if (d->epfd >= 0)
			out_printf(c->o, " epfd %d", d->epfd);
		if (d->tfd >= 0)
			out_printf(c->o, " tfd %d", d->tfd);
		if (d->path) {
			out_puts(c->o, " ");
			out_text(c->o, d->path);
		}
		out_puts(c->o, ": ");
		out_text(c->o, d->message ? d->message : "");
		out_puts(c->o, "\n");
		text_backtrace(c, "backtrace", d->bt, "    ");
	}
}

static void text_header(struct text_ctx *c)
{
	const struct image *img = c->img;
	const struct image_process *p = &img->proc;
	char when[64] = "?";
	struct tm tm;
	time_t sec = (time_t)p->time_sec;
	uint32_t nsets = 0;

	if ((uint64_t)sec == p->time_sec && gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	for (uint32_t i = 0; i < img->ntargets; i++)
		nsets += img->targets[i].kind == IMAGE_KIND_EPOLL;
	out_printf(c->o, "epollcr image, format %d%s%s%s%s%s\n", IMAGE_VERSION,
		   img->flags & IMAGE_F_COMPLETE ? ", complete" : ", INCOMPLETE",
		   img->flags & IMAGE_F_KERNEL_VIEW ? ", kernel view" : "",
		   img->flags & IMAGE_F_SHADOW_VIEW ? ", shadow view" : "",
		   img->flags & IMAGE_F_KERNEL_ONLY
			   ? ", kernel-only (read from outside, no shim)"
			   : "",
		   img->flags & IMAGE_F_UNSETTLED
			   ? ", UNSETTLED (no two reads agreed)"
			   : "");
	out_printf(c->o, "process: pid %d, uid %u, exe ", p->pid, p->uid);
	out_text(c->o, p->exe);
	out_puts(c->o, ", comm ");
	out_text(c->o, p->comm);
	out_printf(c->o, "\ndumped: %s.%09u UTC by epollcr ", when,
		   p->time_nsec);
	out_text(c->o, p->version);
	out_printf(c->o, ", RLIMIT_NOFILE %u\n", p->nofile_limit);
	out_printf(c->o, "contents: %u epoll sets, %u watches, %u targets, %u fds, %u diagnostics, %u backtraces, %u modules\n",
		   nsets, img->nwatches, img->ntargets, img->nfds, img->ndiags,
		   img->nbacktraces, img->nmodules);
}

int show_image_text(const struct image *img, int out_fd, unsigned flags)
{
	struct text_ctx c = { .img = img };
	int ret;

	c.o = malloc(sizeof(*c.o));
	c.frame = malloc(FRAME_TEXT_LEN);
	if (!c.o || !c.frame || index_build(img, &c.ix) < 0) {
		free(c.o);
		free(c.frame);
		return -ENOMEM;
	}
	c.o->fd = out_fd;
	c.o->err = 0;
	c.o->len = 0;
	if (!(flags & SHOW_NO_ADDR2LINE)) {
		a2l_build(img, &c.a2l);
		dm_build(img, &c.dm);
	}
	text_header(&c);
	text_sets(&c);
	text_tree(&c);
	text_diags(&c);
	out_flush(c.o);
	ret = c.o->err;
	a2l_free(&c.a2l);
	dm_free(&c.dm);
	index_free(&c.ix);
	free(c.frame);
	free(c.o);
	return ret;
}

/* ---- JSON --------------------------------------------------------------- */

static void json_backtrace(struct text_ctx *c, uint32_t id)
{
	const struct image_backtrace *bt = backtrace_of(c->img, id);

	out_puts(c->o, "[");
	for (uint32_t i = 0; bt && bt->frames && i < bt->nframes; i++) {
		size_t n = format_frame(c->img, &bt->frames[i],
					bt->frames[i].symbol, c->frame);

		if (i)
			out_puts(c->o, ", ");
		out_json_bytes(c->o, c->frame, n);
	}
	out_puts(c->o, "]");
}

/* [5, 9]: the fd numbers of target id, lowest first. */
static void json_fds(struct text_ctx *c, uint32_t id)
{
	const struct show_index *ix = &c->ix;

	out_puts(c->o, "[");
	if (id != IMAGE_NONE && id <= c->img->ntargets)
		for (uint32_t i = ix->fd_start[id]; i < ix->fd_start[id + 1];
		     i++)
			out_printf(c->o, "%s%d", i > ix->fd_start[id] ? ", " : "",
				   c->img->fds[ix->fd_list[i]].fd);
	out_puts(c->o, "]");
}

static void json_sockaddr(struct out *o, const char *key,
			  const struct sockaddr_storage *ss, uint32_t len)
{
	char addr[IMAGE_MAX_SOCKADDR * 2 + 64];

	out_printf(o, ", \"%s\": ", key);
	if (!len) {
		out_puts(o, "null");
		return;
	}
	out_json_bytes(o, addr, format_sockaddr(ss, len, addr, sizeof(addr)));
}

static void json_target_kind(struct text_ctx *c, const struct image_target *t)
{
	struct out *o = c->o;
	char a[32], b[32];

	switch (t->kind) {
	case IMAGE_KIND_SOCKET: {
		const struct image_socket *s = &t->u.sock;

		out_printf(o, ", \"domain\": \"%s\", \"type\": \"%s\", \"protocol\": %u",
			   domain_name(s->domain, a, sizeof(a)),
			   socktype_name(s->type, b, sizeof(b)), s->protocol);
		json_sockaddr(o, "address", &s->addr, s->addr_len);
		json_sockaddr(o, "peer", &s->peer, s->peer_len);
		out_printf(o, ", \"listening\": %s, \"backlog\": ",
			   json_bool(s->flags & IMAGE_SOCK_LISTENING));
		out_json_fd(o, s->backlog);
		out_printf(o, ", \"connected\": %s, \"bound\": %s, \"reuseaddr\": %s, \"reuseport\": %s, \"v6only\": %s, \"socketpair\": %s",
			   json_bool(s->flags & IMAGE_SOCK_CONNECTED),
			   json_bool(s->flags & IMAGE_SOCK_BOUND),
			   json_bool(s->flags & IMAGE_SOCK_REUSEADDR),
			   json_bool(s->flags & IMAGE_SOCK_REUSEPORT),
			   json_bool(s->flags & IMAGE_SOCK_V6ONLY),
			   json_bool(s->flags & IMAGE_SOCK_PAIR));
		out_puts(o, ", \"pair\": ");
		out_json_fd(o, s->pair ? (int64_t)s->pair : -1);
		out_puts(o, ", \"pair_fd\": ");
		out_json_fd(o, lowest_fd(c->img, &c->ix, s->pair));
		out_printf(o, ", \"pending\": %u", s->pending);
		break;
	}
	case IMAGE_KIND_PIPE:
		out_printf(o, ", \"end\": \"%s\", \"ino\": %" PRIu64 ", \"peer\": ",
			   t->u.pipe.write_end ? "write" : "read",
			   t->u.pipe.ino);
		out_json_fd(o, t->u.pipe.peer ? (int64_t)t->u.pipe.peer : -1);
		out_puts(o, ", \"peer_fd\": ");
		out_json_fd(o, lowest_fd(c->img, &c->ix, t->u.pipe.peer));
		out_printf(o, ", \"pending\": %u", t->u.pipe.pending);
		break;
	case IMAGE_KIND_EVENTFD:
		out_printf(o, ", \"count\": %" PRIu64 ", \"semaphore\": %s",
			   t->u.efd.count, json_bool(t->u.efd.semaphore));
		break;
	case IMAGE_KIND_TIMERFD:
		out_printf(o, ", \"clock\": \"%s\", \"clockid\": %u, \"value_ns\": %" PRIu64 ", \"interval_ns\": %" PRIu64 ", \"ticks\": %" PRIu64 ", \"abstime\": %s, \"cancel_on_set\": %s",
			   clock_name(t->u.tfd.clockid, a, sizeof(a)),
			   t->u.tfd.clockid, t->u.tfd.value_ns,
			   t->u.tfd.interval_ns, t->u.tfd.ticks,
			   json_bool(t->u.tfd.settime_flags & 1),
			   json_bool(t->u.tfd.settime_flags & 2));
		break;
	case IMAGE_KIND_SIGNALFD: {
		bool first = true;

		out_printf(o, ", \"mask\": \"0x%" PRIx64 "\", \"signals\": [",
			   t->u.sfd.mask);
		for (int s = 1; s <= 64; s++) {
			if (!(t->u.sfd.mask & (1ull << (s - 1))))
				continue;
			out_printf(o, "%s\"%s\"", first ? "" : ", ",
				   signal_name(s, a, sizeof(a)));
			first = false;
		}
		out_puts(o, "]");
		break;
	}
	case IMAGE_KIND_EPOLL:
		out_printf(o, ", \"nwatches\": %u, \"fd\": ", t->u.ep.nwatches);
		out_json_fd(o, lowest_fd(c->img, &c->ix,
					 (uint32_t)(t - c->img->targets) + 1));
		break;
	default:
		break;
	}
}

static void json_target(struct text_ctx *c, uint32_t id)
{
	const struct image_target *t = target_of(c->img, id);
	struct out *o = c->o;

	if (!t) {
		out_puts(o, "{\"kind\": \"unknown\", \"id\": null}");
		return;
	}
	out_printf(o, "{\"kind\": \"%s\", \"id\": %u, \"path\": ",
		   image_kind_name(t->kind), id);
	out_json_str(o, t->path);
	out_printf(o, ", \"file_flags\": \"0x%x\", \"origin\": [%s%s%s], \"fds\": ",
		   t->file_flags,
		   t->origin & IMAGE_ORIGIN_KERNEL ? "\"kernel\"" : "",
		   (t->origin & IMAGE_ORIGIN_ALL) == IMAGE_ORIGIN_ALL ? ", " : "",
		   t->origin & IMAGE_ORIGIN_SHADOW ? "\"shadow\"" : "");
	json_fds(c, id);
	json_target_kind(c, t);
	out_puts(o, "}");
}

static void json_watch(struct text_ctx *c, const struct image_watch *w)
{
	struct out *o = c->o;
	char ev[256];
	bool first = true;

	format_events(w->events, ev, sizeof(ev));
	out_printf(o, "{\"tfd\": %d, \"events\": \"0x%x\", \"events_decoded\": \"%s\", \"data\": \"0x%" PRIx64 "\", \"open_fd\": ",
		   w->tfd, w->events, ev, w->data);
	out_json_fd(o, w->open_fd);
	out_puts(o, ", \"flags\": [");
	for (size_t i = 0; i < sizeof(watch_flag_names) /
				       sizeof(watch_flag_names[0]);
	     i++) {
		if (!(w->flags & watch_flag_names[i].bit))
			continue;
		out_printf(o, "%s\"%s\"", first ? "" : ", ",
			   watch_flag_names[i].name);
		first = false;
	}
	out_puts(o, "], \"target\": ");
	json_target(c, w->target);
	out_puts(o, ", \"backtrace\": ");
	json_backtrace(c, w->bt_add);
	out_puts(o, ", \"backtrace_mod\": ");
	json_backtrace(c, w->bt_mod);
	out_puts(o, "}");
}

static void json_set(struct text_ctx *c, uint32_t id)
{
	const struct image_target *t = &c->img->targets[id - 1];
	const struct show_index *ix = &c->ix;
	struct out *o = c->o;
	bool has_fd = ix->fd_start[id] < ix->fd_start[id + 1];

	out_puts(o, "{\"fd\": ");
	out_json_fd(o, lowest_fd(c->img, ix, id));
	out_puts(o, ", \"fds\": ");
	json_fds(c, id);
	out_printf(o, ", \"cloexec\": %s, \"id\": %u, \"nwatches\": %u, \"nested_in\": %u, \"watches\": [",
		   has_fd ? json_bool(c->img->fds[ix->fd_list[ix->fd_start[id]]]
						.fd_flags & FD_CLOEXEC)
			  : "null",
		   id, t->u.ep.nwatches, ix->nparents[id]);
	for (uint32_t i = ix->w_start[id]; i < ix->w_start[id + 1]; i++) {
		out_puts(o, i > ix->w_start[id] ? ",\n      " : "\n      ");
		json_watch(c, &c->img->watches[ix->w_list[i]]);
	}
	out_puts(o, "]}");
}

static void json_diag(struct text_ctx *c, const struct image_diag *d)
{
	struct out *o = c->o;

	out_printf(o, "{\"severity\": \"%s\", \"code\": \"%s\", \"epfd\": ",
		   severity_name(d->severity), diag_code_name(d->code));
	out_json_fd(o, d->epfd);
	out_puts(o, ", \"tfd\": ");
	out_json_fd(o, d->tfd);
	out_puts(o, ", \"path\": ");
	out_json_str(o, d->path);
	out_puts(o, ", \"message\": ");
	out_json_str(o, d->message ? d->message : "");
	out_puts(o, ", \"backtrace\": ");
	json_backtrace(c, d->bt);
	out_puts(o, "}");
}

static void json_head(struct text_ctx *c)
{
	const struct image *img = c->img;
	const struct image_process *p = &img->proc;
	struct out *o = c->o;
	uint32_t kinds[IMAGE_KIND_COUNT] = { 0 };

	out_printf(o, "{\"format\": %d, \"pid\": %d, \"uid\": %u, \"exe\": ",
		   IMAGE_VERSION, p->pid, p->uid);
	out_json_str(o, p->exe);
	out_puts(o, ", \"comm\": ");
	out_json_str(o, p->comm);
	out_puts(o, ", \"version\": ");
	out_json_str(o, p->version);
	out_printf(o, ", \"time_sec\": %" PRIu64 ", \"time_nsec\": %u, \"nofile_limit\": %u, \"complete\": %s, \"kernel_view\": %s, \"shadow_view\": %s, \"kernel_only\": %s, \"unsettled\": %s",
		   p->time_sec, p->time_nsec, p->nofile_limit,
		   json_bool(img->flags & IMAGE_F_COMPLETE),
		   json_bool(img->flags & IMAGE_F_KERNEL_VIEW),
		   json_bool(img->flags & IMAGE_F_SHADOW_VIEW),
		   json_bool(img->flags & IMAGE_F_KERNEL_ONLY),
		   json_bool(img->flags & IMAGE_F_UNSETTLED));
	out_printf(o, ",\n \"counts\": {\"targets\": %u, \"fds\": %u, \"watches\": %u, \"diagnostics\": %u, \"backtraces\": %u, \"modules\": %u}",
		   img->ntargets, img->nfds, img->nwatches, img->ndiags,
		   img->nbacktraces, img->nmodules);
	for (uint32_t i = 0; i < img->ntargets; i++)
		if (img->targets[i].kind < IMAGE_KIND_COUNT)
			kinds[img->targets[i].kind]++;
	out_puts(o, ",\n \"kinds\": {");
	for (uint32_t k = 0; k < IMAGE_KIND_COUNT; k++)
		out_printf(o, "%s\"%s\": %u", k ? ", " : "", image_kind_name(k),
			   kinds[k]);
	out_puts(o, "}");
}

int show_image_json(const struct image *img, int out_fd)
{
	struct text_ctx c = { .img = img };
	bool first = true;
	int ret;

	c.o = malloc(sizeof(*c.o));
	c.frame = malloc(FRAME_TEXT_LEN);
	if (!c.o || !c.frame || index_build(img, &c.ix) < 0) {
		free(c.o);
		free(c.frame);
		return -ENOMEM;
	}
	c.o->fd = out_fd;
	c.o->err = 0;
	c.o->len = 0;
	json_head(&c);
	out_puts(c.o, ",\n \"epoll\": [");
	for (uint32_t i = 0; i < img->ntargets; i++) {
		if (img->targets[i].kind != IMAGE_KIND_EPOLL)
			continue;
		out_puts(c.o, first ? "\n  " : ",\n  ");
		first = false;
		json_set(&c, i + 1);
	}
	out_puts(c.o, "],\n \"diagnostics\": [");
	for (uint32_t i = 0; i < img->ndiags; i++) {
		out_puts(c.o, i ? ",\n  " : "\n  ");
		json_diag(&c, &img->diags[i]);
	}
	out_puts(c.o, "]}\n");
	out_flush(c.o);
	ret = c.o->err;
	index_free(&c.ix);
	free(c.frame);
	free(c.o);
	return ret;
}
