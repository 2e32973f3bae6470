// SPDX-License-Identifier: MIT
/*
 * `show`: the text form says what each set, watch, target, nesting and
 * diagnostic is; the JSON form is parsed back by python3 and checked
 * against the contract of docs/image-format.md; addr2line runs once per
 * module (checked with a fake addr2line that logs its argv), its output is
 * bounded in size and time, and broken models never crash the renderer.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixtures/fixtures.h"
#include "show.h"

/* Render with fn into a memfd and return the text (NUL-terminated). */
static char *render(const struct image *img, bool json, unsigned flags)
{
	int fd = memfd_create("show", MFD_CLOEXEC);
	off_t len;
	char *text;

	assert_true(fd >= 0);
	if (json)
		assert_int_equal(show_image_json(img, fd), 0);
	else
		assert_int_equal(show_image_text(img, fd, flags), 0);
	len = lseek(fd, 0, SEEK_END);
	text = malloc((size_t)len + 1);
	assert_int_equal(pread(fd, text, (size_t)len, 0), len);
	text[len] = '\0';
	close(fd);
	return text;
}

static void assert_contains(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("missing \"%s\" in:\n%s", want, text);
}

static bool have_program(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		return false;
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
		if (access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Run python3 with a script; the JSON goes to its stdin. 0: it passed. */
static int run_python(const char *script, const char *json)
{
	int in[2], status;
	pid_t pid;

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		execlp("python3", "python3", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	signal(SIGPIPE, SIG_IGN);
	size_t len = strlen(json), done = 0;
	while (done < len) {
		ssize_t n = write(in[1], json + done, len - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(in[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ---- text --------------------------------------------------------------- */

static void test_text_full(void **state)
{
	struct image img;
	char *t;

	(void)state;
	fx_model_full(&img);
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "epollcr image, format 1, INCOMPLETE, kernel view\n");
	assert_contains(t, "process: pid 4242, uid 1000, exe /usr/bin/demo, comm de\"mo\\\\\\x0a\\x01\\xff\xc3\xa9\n");
	assert_contains(t, "dumped: 2023-11-14 22:13:20.123456789 UTC by epollcr 0.1.0, RLIMIT_NOFILE 1024\n");
	assert_contains(t, "contents: 2 epoll sets, 7 watches, 12 targets, 12 fds, 3 diagnostics, 2 backtraces, 2 modules\n");
	assert_contains(t, "\nepoll set 1: fd 3 (cloexec), fd 30; 5 watches\n");
	assert_contains(t, "  tfd 4: EPOLLIN|EPOLLERR|EPOLLHUP (0x19), data 0x2a, open_fd 4 [kernel shadow]\n"
			   "    target 2: eventfd count 3; fd 4; path anon_inode:[eventfd], file flags 0x2\n"
			   "    added at:\n"
			   "      #0 main+0x4c (/usr/bin/demo)\n"
			   "      #1 0x7f0000001000\n");
	assert_contains(t, "  tfd 5: EPOLLIN|EPOLLERR|EPOLLHUP|EPOLLET (0x80000019), data 0x7f1234567890, open_fd 5 [kernel]\n"
			   "    target 3: socket AF_INET SOCK_STREAM protocol 6, address 127.0.0.1:8080, listening, bound, backlog 128; fd 5; path socket:[1234], file flags 0x802\n");
	assert_contains(t, "  tfd 6: EPOLLIN|EPOLLONESHOT (0x40000001), data 0x0, open_fd 6 [kernel disarmed]\n"
			   "    target 4: pipe read end, ino 555, peer target 5 (fd 7 (cloexec)), 17 bytes pending; fd 6; path pipe:[555], file flags 0x0\n");
	assert_contains(t, "    last modified at:\n      #0 main+0x4c (/usr/bin/demo)\n");
	assert_contains(t, "#0 __libc_start_main+0x80 (/lib/x86_64-linux-gnu/libc.so.6)\n");
	assert_contains(t, "#1 /usr/bin/demo+0x1100\n");
	assert_contains(t, "#2 _Z3fooIiEvT_+0xffffffffffffffff (/usr/bin/demo)\n");
	assert_contains(t, "  tfd 40: EPOLLIN|EPOLLERR|EPOLLHUP (0x19), data 0x9, open_fd none [kernel]\n"
			   "    target 9: epoll set, 2 watches; no fd;");
	assert_contains(t, "  tfd 7: EPOLLIN|EPOLLPRI|EPOLLOUT|EPOLLERR|EPOLLHUP|EPOLLRDNORM|EPOLLRDBAND|EPOLLWRNORM|EPOLLWRBAND|EPOLLMSG|EPOLLRDHUP|EPOLLEXCLUSIVE|EPOLLWAKEUP|EPOLLONESHOT|EPOLLET (0xf00027df), data 0xffffffffffffffff, open_fd 19999 [kernel shadow disarmed stale]\n");
	assert_contains(t, "\nepoll set 9: no fd; 2 watches\n");
	assert_contains(t, "target 6: timerfd CLOCK_MONOTONIC, value 1.500000000s, interval 0.100000000s, ticks 7, abstime; fd 8 (cloexec)");
	assert_contains(t, "  tfd 0: EPOLLONESHOT (0x40000000), data 0x2, open_fd none [stale]\n    target unknown\n");
	assert_contains(t, "\nnesting:\n  set 1 (fd 3)\n    set 9 (no fd)\n\n");
	assert_contains(t, "\ndiagnostics: 3\n  warning (stale-tfd) epfd 3 tfd 9 socket:[99]: tfd 9 holds another file\n    backtrace:\n      #0 main+0x4c (/usr/bin/demo)\n");
	assert_contains(t, "  info (generic): \n");
	assert_contains(t, "  error (unrestorable) epfd 2147483647 tfd 0 /tmp/\\x1b[31mred\\x09\"q\": bad\\\\name \\xff\\xfe\n");
	image_free(&img);
	free(t);
	/* the other kinds, targets of no watch: through a set watching them */
	fx_model_full(&img);
	for (uint32_t i = 0; i < img.nwatches; i++)
		if (img.watches[i].target == 4)
			img.watches[i].target = 7; /* signalfd */
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "target 7: signalfd mask 0x8000000000004002 SIGINT SIGTERM SIG64; fd 9; path anon_inode:[signalfd]");
	free(t);
	image_free(&img);
}

static void test_text_sockets(void **state)
{
	struct image img;
	char *t;

	(void)state;
	fx_model_full(&img);
	/* watch the three sockets of the full model */
	img.watches[3].target = 10;
	img.watches[4].target = 11;
	img.watches[6].target = 12;
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "target 10: socket AF_INET6 SOCK_STREAM protocol 0, address [::1]:443, peer 10.0.0.1:5555, listening, connected, ended, reuseaddr, reuseport, bound, v6only, socketpair; fd 11 (cloexec); path socket:[77]");
	assert_contains(t, "target 11: socket AF_UNIX SOCK_DGRAM protocol 0, address @abs\"x\\x0a, backlog 2147483647; fd 12; path (none)");
	assert_contains(t, "target 12: socket AF_UNIX SOCK_SEQPACKET protocol 0, address /tmp/a b\\\\c, listening, backlog 0; fd 19999 (cloexec)");
	free(t);
	image_free(&img);
}

/* ---- JSON --------------------------------------------------------------- */

static const char json_check_full[] =
	"import json, sys\n"
	"d = json.load(sys.stdin)\n"
	"assert d['format'] == 1 and d['pid'] == 4242, d\n"
	"assert d['exe'] == '/usr/bin/demo' and d['complete'] is False\n"
	"assert d['comm'] == 'de\"mo\\\\\\n\\x01\\xff\\xe9', repr(d['comm'])\n"
	"assert d['kinds'] == {'other': 1, 'socket': 4, 'pipe': 2, 'eventfd': 1, 'timerfd': 1, 'signalfd': 1, 'epoll': 2}, d['kinds']\n"
	"e = d['epoll']\n"
	"assert len(e) == 2\n"
	"assert e[0]['fd'] == 3 and e[0]['fds'] == [3, 30] and e[0]['cloexec'] is True\n"
	"assert e[1]['fd'] is None and e[1]['fds'] == [] and e[1]['cloexec'] is None\n"
	"w = e[0]['watches']\n"
	"assert [x['tfd'] for x in w] == [4, 5, 6, 40, 7], w\n"
	"assert w[0]['events'] == '0x19' and w[0]['data'] == '0x2a' and w[0]['open_fd'] == 4\n"
	"assert w[0]['target']['kind'] == 'eventfd' and w[0]['target']['count'] == 3\n"
	"assert w[0]['backtrace'] == ['main+0x4c (/usr/bin/demo)', '0x7f0000001000'], w[0]['backtrace']\n"
	"assert w[0]['backtrace_mod'] == []\n"
	"assert w[1]['events'] == '0x80000019' and w[1]['data'] == '0x7f1234567890'\n"
	"t = w[1]['target']\n"
	"assert t['kind'] == 'socket' and t['domain'] == 'AF_INET' and t['type'] == 'SOCK_STREAM'\n"
	"assert t['address'] == '127.0.0.1:8080' and t['listening'] is True and t['backlog'] == 128 and t['peer'] is None\n"
	"assert t['fds'] == [5] and t['path'] == 'socket:[1234]'\n"
	"p = w[2]['target']\n"
	"assert p['kind'] == 'pipe' and p['end'] == 'read' and p['peer'] == 5 and p['peer_fd'] == 7 and p['pending'] == 17\n"
	"assert w[2]['flags'] == ['kernel', 'disarmed'] and w[2]['backtrace_mod'] == ['main+0x4c (/usr/bin/demo)', '0x7f0000001000']\n"
	"assert w[3]['open_fd'] is None and w[3]['target']['kind'] == 'epoll' and w[3]['target']['fd'] is None\n"
	"assert w[4]['events'] == '0xf00027df' and w[4]['data'] == '0xffffffffffffffff'\n"
	"assert w[4]['backtrace'][2] == '_Z3fooIiEvT_+0xffffffffffffffff (/usr/bin/demo)'\n"
	"assert w[4]['backtrace'][1] == '/usr/bin/demo+0x1100'\n"
	"w9 = e[1]['watches']\n"
	"assert w9[0]['target']['kind'] == 'timerfd' and w9[0]['target']['clock'] == 'CLOCK_MONOTONIC'\n"
	"assert w9[0]['target']['interval_ns'] == 100000000 and w9[0]['target']['abstime'] is True\n"
	"assert w9[1]['target']['kind'] == 'unknown' and w9[1]['events'] == '0x40000000'\n"
	"g = d['diagnostics']\n"
	"assert len(g) == 3\n"
	"assert g[0] == {'severity': 'warning', 'code': 'stale-tfd', 'epfd': 3, 'tfd': 9, 'path': 'socket:[99]', 'message': 'tfd 9 holds another file', 'backtrace': ['main+0x4c (/usr/bin/demo)', '0x7f0000001000']}, g[0]\n"
	"assert g[1]['severity'] == 'info' and g[1]['epfd'] is None and g[1]['tfd'] is None and g[1]['path'] is None and g[1]['message'] == ''\n"
	"assert g[2]['severity'] == 'error' and g[2]['path'] == '/tmp/\\x1b[31mred\\t\"q\"' and g[2]['message'] == 'bad\\\\name \\xff\\xfe', g[2]\n";

static void test_json_full(void **state)
{
	struct image img;
	char *j;

	(void)state;
	if (!have_program("python3"))
		skip();
	fx_model_full(&img);
	j = render(&img, true, 0);
	if (run_python(json_check_full, j) != 0)
		fail_msg("python3 rejected:\n%s", j);
	/* only ASCII and valid UTF-8 came out */
	for (const unsigned char *p = (const unsigned char *)j; *p; p++)
		assert_true(*p >= 0x20 || *p == '\n');
	free(j);
	image_free(&img);
}

static const char json_check_sockets[] =
	"import json, sys\n"
	"d = json.load(sys.stdin)\n"
	"w = d['epoll'][0]['watches']\n"
	"a = w[3]['target']\n"
	"assert a['domain'] == 'AF_INET6' and a['address'] == '[::1]:443' and a['peer'] == '10.0.0.1:5555', a\n"
	"assert a['connected'] and a['reuseaddr'] and a['v6only'] and a['socketpair'] and a['backlog'] is None\n"
	"b = d['epoll'][1]['watches'][0]['target']\n"
	"assert b['kind'] == 'signalfd' and b['mask'] == '0x8000000000004002' and b['signals'] == ['SIGINT', 'SIGTERM', 'SIG64'], b\n"
	"c = w[4]['target']\n"
	"assert c['address'] == '@abs\"x\\n' and c['type'] == 'SOCK_DGRAM' and c['path'] is None, c\n"
	"assert w[4]['target']['backlog'] == 2147483647\n";

static void test_json_sockets(void **state)
{
	struct image img;
	char *j;

	(void)state;
	if (!have_program("python3"))
		skip();
	fx_model_full(&img);
	img.watches[3].target = 10;
	img.watches[4].target = 11;
	img.watches[5].target = 7;
	j = render(&img, true, 0);
	if (run_python(json_check_sockets, j) != 0)
		fail_msg("python3 rejected:\n%s", j);
	free(j);
	image_free(&img);
}

/* Every fixture that reads renders to JSON that parses; empty lists too. */
static void test_json_fixtures_parse(void **state)
{
	(void)state;
	if (!have_program("python3"))
		skip();
	for (size_t i = 0; i < FX_NCASES; i++) {
		struct fx_buf b = { 0 };
		struct image img;
		uint64_t off;
		char err[256];

		if (fx_cases[i].message)
			continue;
		fx_cases[i].build(&b, &off);
		assert_int_equal(image_read_mem(b.p, b.len, &img, err,
						sizeof(err)),
				 0);
		char *j = render(&img, true, 0);
		if (run_python("import json,sys; d=json.load(sys.stdin); assert isinstance(d['epoll'], list) and isinstance(d['diagnostics'], list)",
			       j))
			fail_msg("%s: invalid JSON:\n%s", fx_cases[i].name, j);
		free(j);
		image_free(&img);
		fx_buf_free(&b);
	}
}

/* ---- addr2line ---------------------------------------------------------- */

/* A function whose line addr2line must find. */
__attribute__((noinline)) static int marker_function(int x)
{
	return x * 3 + 1; /* MARKER LINE */
}

static int marker_line(void)
{
	FILE *f = fopen(__FILE__, "r");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, "/* MARKER LINE */") && !strstr(line, "strstr"))
			break;
	}
	fclose(f);
	return n;
}

static void test_addr2line_real(void **state)
{
	struct image img;
	Dl_info info;
	char exe[4096], want[4200];
	ssize_t n;

	(void)state;
	if (!have_program("addr2line"))
		skip();
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_true(dladdr((void *)marker_function, &info) != 0);
	assert_int_equal(marker_function(1), 4);
	image_init(&img);
	img.proc.pid = 1;
	struct image_module *m = image_add_module(&img);
	m->path = strdup(exe);
	struct image_backtrace *bt = image_add_backtrace(&img);
	bt->nframes = 1;
	bt->frames = calloc(1, sizeof(*bt->frames));
	/* a return address inside marker_function */
	bt->frames[0].module = 1;
	bt->frames[0].offset = (uintptr_t)marker_function + 4 -
			       (uintptr_t)info.dli_fbase;
	bt->frames[0].symbol = strdup("marker_function");
	bt->frames[0].symbol_offset = 4;
	image_add_diag(&img, IMAGE_SEV_INFO, 0, -1, -1, NULL, 1, "here");
	char *t = render(&img, false, 0);
	snprintf(want, sizeof(want), "#0 marker_function+0x4 (%s) at ", exe);
	assert_contains(t, want);
	/* the line of marker_function (its first line at -O0/-O1) */
	const char *at = strstr(t, "test_show.c:");
	int line = at ? atoi(at + strlen("test_show.c:")) : 0;
	if (line < marker_line() - 3 || line > marker_line())
		fail_msg("expected line %d of test_show.c in:\n%s", marker_line(),
			 t);
	free(t);
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_null(strstr(t, " at "));
	free(t);
	image_free(&img);
}

/* A temporary directory with an executable "addr2line" script. */
static void fake_addr2line(char *dir, const char *body)
{
	char path[300];
	FILE *f;

	strcpy(dir, "/tmp/epollcr-fake-a2l-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/addr2line", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

/* PATH with dir first, so that its addr2line is the one found. */
static void with_fake_first(const char *dir, const char *old_path)
{
	char path[8192];

	snprintf(path, sizeof(path), "%s:%s", dir, old_path);
	setenv("PATH", path, 1);
}

static void remove_fake(const char *dir)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/addr2line", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/log", dir);
	unlink(path);
	rmdir(dir);
}

/* Two real modules (files that exist), one missing; shared addresses. */
static void model_modules(struct image *img, const char *mod1,
			  const char *mod2)
{
	static const uint64_t offs[][2] = { { 1, 0x100 }, { 1, 0x20 },
					    { 2, 0x3000 }, { 3, 0x5 },
					    { 1, 0x100 } };

	image_init(img);
	img->proc.pid = 1;
	image_add_module(img)->path = strdup(mod1);
	image_add_module(img)->path = strdup(mod2);
	image_add_module(img)->path = strdup("/nonexistent/lib.so");
	for (int b = 0; b < 2; b++) {
		struct image_backtrace *bt = image_add_backtrace(img);
		bt->nframes = 5;
		bt->frames = calloc(5, sizeof(*bt->frames));
		for (int i = 0; i < 5; i++) {
			bt->frames[i].module = (uint32_t)offs[i][0];
			bt->frames[i].offset = offs[i][1] + (uint64_t)b;
		}
		image_add_diag(img, IMAGE_SEV_INFO, 0, -1, -1, NULL,
			       (uint32_t)b + 1, "d%d", b);
	}
}

static char *slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = calloc(1, 65536);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, 65535);
		(void)n;
		close(fd);
	}
	return buf;
}

static void test_addr2line_once_per_module(void **state)
{
	char dir[64], logpath[300], *old_path, want[1024];
	const char *mod1 = "/bin/true";
	struct image img;

	(void)state;
	show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	/* log the argv, answer "fn" and "fake.c:<address>" per address */
	fake_addr2line(dir, "echo \"$*\" >> \"$(dirname \"$0\")/log\"\n"
			    "shift 4\n"
			    "for a in \"$@\"; do echo fn; echo \"fake.c:$a\"; done");
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	old_path = strdup(getenv("PATH"));
	with_fake_first(dir, old_path);
	model_modules(&img, mod1, "/bin/sh");
	char *t = render(&img, false, 0);
	setenv("PATH", old_path, 1);
	char *log = slurp(logpath);
	/*
	 * module 1: offsets 0x20, 0x21, 0x100, 0x101, asked one byte before
	 * (a PIE: link base 0), of the file opened and checked, as fd 3
	 */
	assert_contains(log, "-e /dev/fd/3 -f -C 0x1f 0x20 0xff 0x100\n"
			     "-e /dev/fd/3 -f -C ");
	/* exactly two runs: one per module that exists */
	int runs = 0;
	for (char *p = log; (p = strchr(p, '\n')); p++)
		runs++;
	assert_int_equal(runs, 2);
	snprintf(want, sizeof(want), "#0 %s+0x100 at fake.c:0xff\n", mod1);
	assert_contains(t, want);
	snprintf(want, sizeof(want), "#1 %s+0x21 at fake.c:0x20\n", mod1);
	assert_contains(t, want);
	assert_contains(t, "#3 /nonexistent/lib.so+0x5\n");
	free(log);
	free(t);
	image_free(&img);
	free(old_path);
	remove_fake(dir);
}

/*
 * Modules that are no regular ELF file get no addr2line run: a FIFO (its
 * open must not block: before, show hung on it), a device, a directory, a
 * script.  Bounded by alarm().
 */
static void test_addr2line_only_elf(void **state)
{
	char dir[64], logpath[300], fifo[300], script[300], *old_path;
	static const char *const others[] = { "/dev/zero", "/dev/tty", "/" };
	struct image img;

	(void)state;
	show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	fake_addr2line(dir, "echo \"$*\" >> \"$(dirname \"$0\")/log\"");
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(script, sizeof(script), "%s/addr2line", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	old_path = strdup(getenv("PATH"));
	with_fake_first(dir, old_path);
	alarm(20);
	model_modules(&img, fifo, script);
	char *t = render(&img, false, 0);
	assert_contains(t, "#0 ");
	free(t);
	image_free(&img);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		model_modules(&img, others[i], others[i]);
		t = render(&img, false, 0);
		free(t);
		image_free(&img);
	}
	alarm(0);
	setenv("PATH", old_path, 1);
	char *log = slurp(logpath);
	assert_string_equal(log, "");
	free(log);
	unlink(fifo);
	free(old_path);
	remove_fake(dir);
}

/* Output without end, garbage, failure, a hang: no file:line, no hang. */
static void test_addr2line_misbehaving(void **state)
{
	static const char *const bodies[] = {
		"exec yes fake.c:1",
		"echo only-one-line",
		"echo fn; echo fake.c:1; exit 3",
		"echo fn; exec sleep 60",
	};
	char dir[64], *old_path = strdup(getenv("PATH"));
	struct image img;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct timespec a, b;

		show_tools_budget(2000);
		fake_addr2line(dir, bodies[i]);
		with_fake_first(dir, old_path);
		model_modules(&img, "/bin/sh", "/nonexistent/2");
		clock_gettime(CLOCK_MONOTONIC, &a);
		char *t = render(&img, false, 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		setenv("PATH", old_path, 1);
		assert_null(strstr(t, " at "));
		assert_true(b.tv_sec - a.tv_sec <= 2 + 2);
		free(t);
		image_free(&img);
		remove_fake(dir);
	}
	/* no addr2line at all */
	show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	setenv("PATH", "/nonexistent", 1);
	model_modules(&img, "/bin/sh", "/bin/sh");
	char *t = render(&img, false, 0);
	setenv("PATH", old_path, 1);
	assert_contains(t, "#0 /bin/sh+0x100\n");
	free(t);
	image_free(&img);
	free(old_path);
}

/*
 * One budget for all the helper runs of a command: addr2line hanging on
 * each of four modules, over two images, costs the budget once (before:
 * SHOW_ADDR2LINE_TIMEOUT_MS, 10 s, per module).
 */
static void test_addr2line_one_budget(void **state)
{
	char dir[64], *old_path = strdup(getenv("PATH"));
	struct timespec a, b;
	struct image img;
	double ms;

	(void)state;
	fake_addr2line(dir, "exec sleep 60");
	with_fake_first(dir, old_path);
	show_tools_budget(1500);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 2; i++) {
		model_modules(&img, "/bin/sh", "/bin/true");
		char *t = render(&img, false, 0);
		assert_null(strstr(t, " at "));
		free(t);
		image_free(&img);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	setenv("PATH", old_path, 1);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("4 hanging addr2line runs over 2 images: %.0f ms\n", ms);
	assert_true(ms < 3000);
	remove_fake(dir);
	free(old_path);
}

/* C++ frame symbols are demangled in text (c++filt), kept in JSON. */
static void test_demangle(void **state)
{
	struct image img;
	char *t;

	(void)state;
	if (!have_program("c++filt"))
		skip();
	show_tools_budget(SHOW_TOOLS_BUDGET_MS);
	image_init(&img);
	img.proc.pid = 1;
	struct image_backtrace *bt = image_add_backtrace(&img);
	bt->nframes = 3;
	bt->frames = calloc(3, sizeof(*bt->frames));
	bt->frames[0] = (struct image_frame){ IMAGE_NONE, 0x10,
					      strdup("_ZN4demo6Server4pollEi"),
					      0x2a };
	bt->frames[1] = (struct image_frame){ IMAGE_NONE, 0x20,
					      strdup("plain_c_function"), 1 };
	/* not a clean mangled name: never handed to c++filt */
	bt->frames[2] = (struct image_frame){ IMAGE_NONE, 0x30,
					      strdup("_Z3foov\n-x"), 2 };
	image_add_diag(&img, IMAGE_SEV_INFO, 0, -1, -1, NULL, 1, "here");
	t = render(&img, false, 0);
	assert_contains(t, "#0 demo::Server::poll(int)+0x2a\n");
	assert_contains(t, "#1 plain_c_function+0x1\n");
	assert_null(strstr(t, "foo()"));
	free(t);
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "#0 _ZN4demo6Server4pollEi+0x2a\n");
	free(t);
	t = render(&img, true, 0);
	assert_contains(t, "_ZN4demo6Server4pollEi+0x2a");
	free(t);
	image_free(&img);
}

/* ---- robustness --------------------------------------------------------- */

/* Models the reader would refuse still render, without crashing. */
static void test_broken_models(void **state)
{
	struct image img;
	char *t;

	(void)state;
	fx_model_full(&img);
	img.watches[1].set = 999;
	img.watches[2].bt_add = 999;
	img.fds[0].target = 999;
	img.diags[0].bt = 999;
	img.backtraces[0].frames[0].module = 999;
	img.targets[3].u.pipe.peer = 999;
	img.targets[7].kind = 99;
	img.watches[0].target = 8;
	img.watches[3].target = 999;
	img.diags[1].severity = 77;
	img.diags[1].code = 77;
	img.targets[11].u.sock.addr_len = 3; /* of the 9 it has */
	img.targets[11].u.sock.addrp->ss_family = AF_INET;
	img.watches[6].target = 12;
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "target not in the image\n");
	assert_contains(t, "backtrace 999 is not in the image");
	assert_contains(t, "  unknown (unknown): \n");
	assert_contains(t, "target 8: other; fd 10; path (none), file flags 0xffffffff\n");
	assert_contains(t, "address 3 bytes:02002f");
	free(t);
	free(render(&img, true, 0));
	image_free(&img);
	/* a cycle and a chain of 200 sets: each set printed once */
	fx_model_chain(&img, 200);
	struct image_watch *w = image_add_watch(&img);
	*w = (struct image_watch){ 200, 1, EPOLLIN, 0, 1, -1, 0, 0, 0 };
	t = render(&img, false, SHOW_NO_ADDR2LINE);
	assert_contains(t, "\nnesting:\n  set 1 (fd 10)\n    set 2 (fd 11)\n");
	/* the tree stops at its depth limit and goes on from there */
	size_t sets_listed = 0;
	for (char *p = strstr(t, "\nnesting:"); (p = strstr(p, "set ")); p++)
		sets_listed++;
	assert_true(sets_listed >= 200 && sets_listed <= 202);
	free(t);
	free(render(&img, true, 0));
	image_free(&img);
}

static void test_write_errors(void **state)
{
	struct image img;
	int p[2];

	(void)state;
	fx_model_full(&img);
	assert_int_equal(show_image_text(&img, -1, SHOW_NO_ADDR2LINE), -EBADF);
	assert_int_equal(show_image_json(&img, -1), -EBADF);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(show_image_json(&img, p[1]), -EPIPE);
	close(p[1]);
	image_free(&img);
}

/* A large image renders in one pass (index, not quadratic scans). */
static void test_large(void **state)
{
	struct image img;
	struct timespec a, b;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)state;
	image_init(&img);
	img.proc.pid = 1;
	for (uint32_t s = 0; s < 200; s++) {
		struct image_target *t = image_add_target(&img, IMAGE_KIND_EPOLL);
		t->u.ep.nwatches = 1000;
	}
	for (uint32_t e = 0; e < 1000; e++) {
		image_add_target(&img, IMAGE_KIND_EVENTFD);
		struct image_fd *f = image_add_fd(&img);
		f->fd = (int32_t)e;
		f->target = 201 + e;
	}
	for (uint32_t i = 0; i < 200000; i++) {
		struct image_watch *w = image_add_watch(&img);
		w->set = 1 + i / 1000;
		w->tfd = (int32_t)(i % 1000);
		w->target = 201 + i % 1000;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(show_image_text(&img, fd, SHOW_NO_ADDR2LINE), 0);
	assert_int_equal(show_image_json(&img, fd), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true(b.tv_sec - a.tv_sec < 30);
	close(fd);
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_full),
		cmocka_unit_test(test_text_sockets),
		cmocka_unit_test(test_json_full),
		cmocka_unit_test(test_json_sockets),
		cmocka_unit_test(test_json_fixtures_parse),
		cmocka_unit_test(test_addr2line_real),
		cmocka_unit_test(test_addr2line_once_per_module),
		cmocka_unit_test(test_addr2line_only_elf),
		cmocka_unit_test(test_addr2line_one_budget),
		cmocka_unit_test(test_demangle),
		cmocka_unit_test(test_addr2line_misbehaving),
		cmocka_unit_test(test_broken_models),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
