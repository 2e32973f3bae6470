// SPDX-License-Identifier: MIT
/*
 * `epollcr show`: backtraces as people read them.  The frames' addresses
 * are given to addr2line (one run per module) and the names it prints to
 * c++filt, each run bounded in time (one budget per process,
 * show_tools_budget) and in output; a frame whose helper fails or runs out
 * of time prints as module+offset.
 */
#include "show_internal.h"

extern char **environ;

/* ---- backtraces and addr2line ------------------------------------------ */

static int cmp_a2l(const void *a, const void *b)
{
	const struct a2l_entry *x = a, *y = b;

	if (x->module != y->module)
		return x->module < y->module ? -1 : 1;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

const char *a2l_lookup(const struct a2l *a, uint32_t module,
		       uint64_t offset)
{
	struct a2l_entry key = { .module = module, .offset = offset };
	const struct a2l_entry *e;

	if (!a || !a->n)
		return NULL;
	e = bsearch(&key, a->e, a->n, sizeof(*a->e), cmp_a2l);
	return e ? e->where : NULL;
}

void a2l_free(struct a2l *a)
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
void a2l_build(const struct image *img, struct a2l *a)
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

const char *dm_lookup(const struct demangled *d, const char *symbol)
{
	struct dm_entry key = { .mangled = symbol };
	const struct dm_entry *e;

	if (!symbol || !d->n || strncmp(symbol, "_Z", 2))
		return symbol;
	e = bsearch(&key, d->e, d->n, sizeof(*d->e), cmp_dm);
	return e && e->plain ? e->plain : symbol;
}

void dm_free(struct demangled *d)
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
void dm_build(const struct image *img, struct demangled *d)
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
size_t format_frame(const struct image *img,
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

const struct image_backtrace *backtrace_of(const struct image *img,
					   uint32_t id)
{
	if (id == IMAGE_NONE || id > img->nbacktraces)
		return NULL;
	return &img->backtraces[id - 1];
}
