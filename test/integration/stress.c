// SPDX-License-Identifier: MIT
/*
 * stress: 8 threads churn epoll state while test_stress.sh dumps the
 * process as fast as `epollcr dump` goes.  Plain program: run it under the
 * shim.
 *
 *   stress SECONDS [--no-children]
 *	Each thread keeps STRESS_SLOTS files (eventfd, pipe, socketpair,
 *	timerfd) and, at random, creates them, adds them to its own set or
 *	to the two shared sets, modifies, deletes, moves them to another fd
 *	(dup then close: the watch stays under the old number), replaces them
 *	under their number (dup2 of a new eventfd), closes them, nests its own
 *	set into a shared one, waits on its sets (fired EPOLLONESHOT watches
 *	get disarmed) and makes its files ready.  Every call's result is
 *	checked against what the thread knows it should be.  Thread 0 also
 *	forks a child every FORK_EVERY_MS: the child adds a file of its own
 *	under a number of FORK_TFD_BASE.. to one of the shared sets, modifies
 *	it, keeps it CHILD_LINGER_MS (so that dumps of the parent see it),
 *	deletes it half the time, and exits.  Thread 1 also forks a child
 *	every EXEC_EVERY_MS that re-executes this program as
 *	`stress --exec-child EPFD TFD`: it inherits shared set 1 (not
 *	close-on-exec) and does the same under TFD, one of EXEC_TFD_BASE...
 *	Children keep every file they inherit until they exit, as real
 *	programs' children do: a watched file the parent closes meanwhile
 *	stays watched in the shared sets until the child exits.
 *	--no-children: no fork, no exec (tells apart what only children
 *	cause).
 *	Prints "ready", then "progress OPS" every second; stops on SIGTERM or
 *	SIGINT, or by itself after SECONDS + STRESS_GRACE_S, and prints
 *	"stress: done: ops N forks N execs N pauses N unexpected N".  Exit 0
 *	when every call did what it should, 1 otherwise.
 *	SIGUSR1 asks for a pause: every thread stops between two operations
 *	(no child is then alive: each is waited for), and "paused N" is
 *	printed; SIGUSR2 resumes ("resumed N").  A test compares the state
 *	with the kernel's while nothing moves.  A pause longer than
 *	STRESS_MAX_PAUSE_S ends by itself.
 *
 *   stress --exec-child EPFD TFD
 *	The exec'd child (see above).  Exit 0 when every call did what it
 *	should.
 *
 * The children's numbers (FORK_TFD_BASE .. EXEC_TFD_BASE + CHILD_TFDS - 1)
 * are never used by the parent, which keeps far fewer files: a watch the
 * parent's image shows under them was made by a child, the only watches the
 * parent's shim cannot have seen.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STRESS_THREADS 8
#define STRESS_SLOTS 16		/* files per thread */
#define STRESS_MAX_SECONDS 600	/* bound on the SECONDS argument */
#define STRESS_GRACE_S 30	/* stops by itself SECONDS + this after start */
#define NSETS 3			/* a thread's own set, shared 0, shared 1 */
#define FORK_EVERY_MS 100	/* thread 0 forks a child this often */
#define EXEC_EVERY_MS 250	/* thread 1 forks a child to exec this often */
#define CHILD_WAIT_MS 5000	/* a child not gone by then is a failure */
#define FORK_TFD_BASE 900	/* fork children's numbers: 900..939 */
#define EXEC_TFD_BASE 950	/* exec children's numbers: 950..989 */
#define CHILD_TFDS 40		/* numbers per kind of child */
#define NEED_NOFILE (EXEC_TFD_BASE + CHILD_TFDS)
#define MAX_REPORTS 20		/* unexpected results printed, at most */
#define CHILD_LINGER_MS 60	/* a child keeps its watch this long */
#define STRESS_MAX_PAUSE_S 60	/* a pause ends by itself after this */

struct slot {
	int fd;			/* the file's number, -1 when empty */
	int aux;		/* the other end (pipe, socketpair) or -1 */
	int alias;		/* after a move: where the file lives, or -1 */
	unsigned int watched;	/* bit s: watched in set s, under fd */
	uint32_t events[NSETS];	/* the events of each watch */
};

struct worker {
	int id;
	pthread_t thread;
	unsigned int seed;
	int sets[NSETS];	/* own, shared 0, shared 1 */
	bool own_nested;	/* own set added into shared 0 */
	struct slot slots[STRESS_SLOTS];
};

static atomic_bool stopping;
static atomic_bool pause_asked, resume_asked; /* SIGUSR1, SIGUSR2 */
static atomic_bool paused;	/* workers must stay parked */
static atomic_int parked;	/* workers parked right now */
static atomic_ulong total_ops, forks, execs, pauses, unexpected;
static int shared_sets[2];
static const char *self_exe = "/proc/self/exe";
static bool no_children;

static void on_term(int sig)
{
	(void)sig;
	atomic_store(&stopping, true);
}

static void on_pause(int sig)
{
	atomic_store(sig == SIGUSR1 ? &pause_asked : &resume_asked, true);
}

/* Count (and print the first MAX_REPORTS of) results that are wrong. */
static void bad(const char *what, int fd, long ret, int err)
{
	unsigned long n = atomic_fetch_add(&unexpected, 1);
	if (n < MAX_REPORTS)
		fprintf(stderr, "stress[%d]: %s on fd %d returned %ld (%s)\n",
			(int)getpid(), what, fd, ret, strerror(err));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t pick_events(unsigned int *seed, bool may_exclusive)
{
	static const uint32_t choices[] = {
		EPOLLIN, EPOLLIN | EPOLLET, EPOLLIN | EPOLLONESHOT,
		EPOLLOUT, EPOLLIN | EPOLLOUT | EPOLLRDHUP,
		EPOLLIN | EPOLLET | EPOLLONESHOT, EPOLLIN | EPOLLEXCLUSIVE,
		EPOLLOUT | EPOLLEXCLUSIVE | EPOLLET,
	};
	int n = sizeof(choices) / sizeof(choices[0]);
	if (!may_exclusive)
		n -= 2;
	return choices[rand_r(seed) % n];
}

static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, op, fd, &ev);
}

static uint64_t rand64(unsigned int *seed)
{
	return ((uint64_t)rand_r(seed) << 33) ^ ((uint64_t)rand_r(seed) << 11) ^
	       (uint64_t)rand_r(seed);
}

static void slot_create(struct worker *w, struct slot *s)
{
	int cloexec = rand_r(&w->seed) % 4 ? O_CLOEXEC : 0;
	int sv[2];
	s->aux = -1;
	s->alias = -1;
	s->watched = 0;
	switch (rand_r(&w->seed) % 4) {
	case 0:
		s->fd = eventfd(rand_r(&w->seed) % 2,
				EFD_NONBLOCK | (cloexec ? EFD_CLOEXEC : 0));
		break;
	case 1:
		if (pipe2(sv, O_NONBLOCK | cloexec) < 0) {
			s->fd = -1;
			break;
		}
		s->fd = sv[0];
		s->aux = sv[1];
		break;
	case 2:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			       (cloexec ? SOCK_CLOEXEC : 0), 0, sv) < 0) {
			s->fd = -1;
			break;
		}
		s->fd = sv[0];
		s->aux = sv[1];
		break;
	default:
		s->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
				       (cloexec ? TFD_CLOEXEC : 0));
		if (s->fd >= 0 && rand_r(&w->seed) % 2) {
			struct itimerspec its = {
				.it_value.tv_nsec = 1000000,
			};
			if (timerfd_settime(s->fd, 0, &its, NULL) < 0)
				bad("timerfd_settime", s->fd, -1, errno);
		}
		break;
	}
	if (s->fd < 0)
		bad("create", -1, -1, errno);
}

/* Release the slot's files; their watches go with them. */
static void slot_close(struct slot *s)
{
	int fd = s->alias >= 0 ? s->alias : s->fd;
	if (close(fd) < 0)
		bad("close", fd, -1, errno);
	if (s->aux >= 0 && close(s->aux) < 0)
		bad("close aux", s->aux, -1, errno);
	s->fd = s->aux = s->alias = -1;
	s->watched = 0;
}

static void op_add(struct worker *w, struct slot *s)
{
	int set = rand_r(&w->seed) % NSETS;
	if (s->alias >= 0 || (s->watched & (1u << set)))
		return;
	uint32_t ev = pick_events(&w->seed, true);
	int ret = ctl(w->sets[set], EPOLL_CTL_ADD, s->fd, ev, rand64(&w->seed));
	if (ret < 0) {
		bad("EPOLL_CTL_ADD", s->fd, ret, errno);
		return;
	}
	s->watched |= 1u << set;
	s->events[set] = ev;
}

static void op_mod(struct worker *w, struct slot *s)
{
	int set = rand_r(&w->seed) % NSETS;
	if (s->alias >= 0 || !(s->watched & (1u << set)) ||
	    (s->events[set] & EPOLLEXCLUSIVE))
		return;
	uint32_t ev = pick_events(&w->seed, false);
	int ret = ctl(w->sets[set], EPOLL_CTL_MOD, s->fd, ev, rand64(&w->seed));
	if (ret < 0) {
		bad("EPOLL_CTL_MOD", s->fd, ret, errno);
		return;
	}
	s->events[set] = ev;
}

static void op_del(struct worker *w, struct slot *s)
{
	int set = rand_r(&w->seed) % NSETS;
	if (s->alias >= 0 || !(s->watched & (1u << set)))
		return;
	int ret = ctl(w->sets[set], EPOLL_CTL_DEL, s->fd, 0, 0);
	if (ret < 0)
		bad("EPOLL_CTL_DEL", s->fd, ret, errno);
	s->watched &= ~(1u << set);
}

/* dup, then close the original: the watches stay under the old number. */
static void op_move(struct worker *w, struct slot *s)
{
	if (s->alias >= 0)
		return;
	int nfd = rand_r(&w->seed) % 2 ? dup(s->fd) :
					 fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0) {
		bad("dup", s->fd, nfd, errno);
		return;
	}
	if (close(s->fd) < 0)
		bad("close after dup", s->fd, -1, errno);
	s->alias = nfd;
}

/* dup2 a new eventfd over the slot's number: the old file is released. */
static void op_replace(struct worker *w, struct slot *s)
{
	if (s->alias >= 0)
		return;
	int tmp = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tmp < 0) {
		bad("eventfd", -1, tmp, errno);
		return;
	}
	int ret = rand_r(&w->seed) % 2 ? dup2(tmp, s->fd) :
					 dup3(tmp, s->fd, O_CLOEXEC);
	if (ret != s->fd)
		bad("dup2 over a watched fd", s->fd, ret, errno);
	if (close(tmp) < 0)
		bad("close", tmp, -1, errno);
	if (s->aux >= 0 && close(s->aux) < 0)
		bad("close aux", s->aux, -1, errno);
	s->aux = -1;
	s->watched = 0;
}

static void op_nest(struct worker *w)
{
	int op = w->own_nested ? EPOLL_CTL_DEL : EPOLL_CTL_ADD;
	int ret = ctl(w->sets[1], op, w->sets[0], EPOLLIN, (uint64_t)w->id);
	if (ret < 0)
		bad(w->own_nested ? "DEL own set from shared 0" :
				    "ADD own set into shared 0",
		    w->sets[0], ret, errno);
	else
		w->own_nested = !w->own_nested;
}

static void op_wait(struct worker *w)
{
	struct epoll_event evs[16];
	int set = rand_r(&w->seed) % NSETS;
	int ret = epoll_wait(w->sets[set], evs, 16, 0);
	if (ret < 0)
		bad("epoll_wait", w->sets[set], ret, errno);
}

static void op_ready(struct worker *w, struct slot *s)
{
	uint64_t one = 1;
	int fd = s->aux >= 0 ? s->aux : (s->alias >= 0 ? s->alias : s->fd);
	(void)w;
	/* Nonblocking; a full pipe or a timerfd (EINVAL) is fine. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN &&
	    errno != EINVAL)
		bad("write", fd, -1, errno);
}

/* Collect a child within CHILD_WAIT_MS; anything but exit 0 is wrong. */
static void reap(pid_t pid, const char *what)
{
	uint64_t deadline = now_ms() + CHILD_WAIT_MS;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0) {
			bad(what, pid, r, errno);
			return;
		}
		if (now_ms() > deadline) {
			bad(what, pid, -1, ETIMEDOUT);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		usleep(1000);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bad(what, pid, status, 0);
}

/*
 * What a child does on a set it shares with the parent: a file of its own
 * under number tfd, added, modified, and deleted or left to go at exit.
 * Returns the number of calls that did not do what they should.
 */
static int child_ops(int ep, int tfd, unsigned int seed)
{
	int errors = 0;
	int e = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e < 0 || dup2(e, tfd) != tfd)
		return 1;
	close(e);
	uint64_t data = 0xc0de000000000000ull | (uint64_t)tfd;
	errors += ctl(ep, EPOLL_CTL_ADD, tfd, EPOLLIN | EPOLLET, data) != 0;
	errors += ctl(ep, EPOLL_CTL_MOD, tfd, EPOLLIN | EPOLLOUT,
		      data + 1) != 0;
	usleep(CHILD_LINGER_MS * 1000);
	if (rand_r(&seed) % 2)
		errors += ctl(ep, EPOLL_CTL_DEL, tfd, 0, 0) != 0;
	return errors;
}

static void do_fork(struct worker *w, unsigned long n)
{
	pid_t pid = fork();
	if (pid < 0) {
		bad("fork", -1, pid, errno);
		return;
	}
	if (pid == 0) {
		int tfd = FORK_TFD_BASE + (int)(n % CHILD_TFDS);
		int errors = child_ops(shared_sets[n % 2], tfd, w->seed);
		_exit(errors ? 1 : 0);
	}
	atomic_fetch_add(&forks, 1);
	reap(pid, "fork child");
}

static void do_exec(unsigned long n)
{
	char epfd[16], tfd[16];
	snprintf(epfd, sizeof(epfd), "%d", shared_sets[1]);
	snprintf(tfd, sizeof(tfd), "%d", EXEC_TFD_BASE + (int)(n % CHILD_TFDS));
	char *argv[] = { "stress", "--exec-child", epfd, tfd, NULL };
	pid_t pid = fork();
	if (pid < 0) {
		bad("fork", -1, pid, errno);
		return;
	}
	if (pid == 0) {
		execv(self_exe, argv);
		_exit(127);
	}
	atomic_fetch_add(&execs, 1);
	reap(pid, "exec child");
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t every = w->id ? EXEC_EVERY_MS : FORK_EVERY_MS;
	uint64_t next_child = now_ms() + every;
	unsigned long nchild = 0;
	while (!atomic_load(&stopping)) {
		if (atomic_load(&paused)) {
			/* Park between two operations until resumed. */
			atomic_fetch_add(&parked, 1);
			while (atomic_load(&paused) && !atomic_load(&stopping))
				usleep(1000);
			atomic_fetch_sub(&parked, 1);
			continue;
		}
		struct slot *s = &w->slots[rand_r(&w->seed) % STRESS_SLOTS];
		int op = rand_r(&w->seed) % 20;
		if (s->fd < 0 && s->alias < 0) {
			slot_create(w, s);
		} else if (op < 5) {
			op_add(w, s);
		} else if (op < 8) {
			op_mod(w, s);
		} else if (op < 10) {
			op_del(w, s);
		} else if (op < 11) {
			op_move(w, s);
		} else if (op < 12) {
			op_replace(w, s);
		} else if (op < 14) {
			slot_close(s);
		} else if (op < 15) {
			op_nest(w);
		} else if (op < 18) {
			op_wait(w);
		} else {
			op_ready(w, s);
		}
		atomic_fetch_add(&total_ops, 1);
		if (w->id < 2 && !no_children && now_ms() >= next_child) {
			if (w->id == 0)
				do_fork(w, nchild++);
			else
				do_exec(nchild++);
			next_child = now_ms() + every;
		}
	}
	for (int i = 0; i < STRESS_SLOTS; i++)
		if (w->slots[i].fd >= 0 || w->slots[i].alias >= 0)
			slot_close(&w->slots[i]);
	if (w->own_nested)
		op_nest(w);
	close(w->sets[0]);
	return NULL;
}

static int exec_child(int argc, char **argv)
{
	struct epoll_event ev;
	if (argc != 4)
		return 2;
	int ep = atoi(argv[2]);
	int tfd = atoi(argv[3]);
	if (tfd < EXEC_TFD_BASE || tfd >= EXEC_TFD_BASE + CHILD_TFDS)
		return 2;
	/* The inherited number must hold an epoll set. */
	if (epoll_wait(ep, &ev, 1, 0) < 0) {
		fprintf(stderr, "stress exec child: epoll_wait(%d): %s\n", ep,
			strerror(errno));
		return 1;
	}
	return child_ops(ep, tfd, (unsigned int)getpid()) ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct worker workers[STRESS_THREADS];
	if (argc >= 2 && !strcmp(argv[1], "--exec-child"))
		return exec_child(argc, argv);
	long seconds = argc >= 2 ? strtol(argv[1], NULL, 10) : 0;
	no_children = argc == 3 && !strcmp(argv[2], "--no-children");
	if (argc < 2 || argc > 3 || (argc == 3 && !no_children) ||
	    seconds <= 0 || seconds > STRESS_MAX_SECONDS) {
		fprintf(stderr, "usage: stress SECONDS [--no-children] (SECONDS 1..%d) | stress --exec-child EPFD TFD\n",
			STRESS_MAX_SECONDS);
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < NEED_NOFILE) {
		rl.rlim_cur = NEED_NOFILE;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			perror("stress: RLIMIT_NOFILE below the children's numbers");
			return 1;
		}
	}
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct sigaction sp = { .sa_handler = on_pause };
	sigaction(SIGUSR1, &sp, NULL);
	sigaction(SIGUSR2, &sp, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Shared set 1 is inherited by the exec children; it is nested in 0. */
	shared_sets[0] = epoll_create1(EPOLL_CLOEXEC);
	shared_sets[1] = epoll_create1(0);
	if (shared_sets[0] < 0 || shared_sets[1] < 0 ||
	    ctl(shared_sets[0], EPOLL_CTL_ADD, shared_sets[1], EPOLLIN,
		1) < 0) {
		perror("stress: shared sets");
		return 1;
	}
	for (int i = 0; i < STRESS_THREADS; i++) {
		struct worker *w = &workers[i];
		w->id = i;
		w->seed = (unsigned int)(getpid() * 31 + i * 7919);
		w->sets[0] = epoll_create1(EPOLL_CLOEXEC);
		w->sets[1] = shared_sets[0];
		w->sets[2] = shared_sets[1];
		if (w->sets[0] < 0) {
			perror("stress: epoll_create1");
			return 1;
		}
		for (int j = 0; j < STRESS_SLOTS; j++) {
			struct slot *s = &w->slots[j];
			s->fd = s->aux = s->alias = -1;
		}
	}
	for (int i = 0; i < STRESS_THREADS; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main,
				   &workers[i])) {
			fprintf(stderr, "stress: pthread_create failed\n");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	uint64_t end = now_ms() + (uint64_t)(seconds + STRESS_GRACE_S) * 1000;
	uint64_t next = now_ms() + 1000, pause_end = 0;
	bool announced = false;
	while (!atomic_load(&stopping)) {
		usleep(1000);
		uint64_t now = now_ms();
		if (now >= end) {
			fprintf(stderr, "stress: no SIGTERM %ld s after start: stopping\n",
				seconds + STRESS_GRACE_S);
			atomic_store(&stopping, true);
		}
		if (atomic_exchange(&pause_asked, false) &&
		    !atomic_load(&paused)) {
			atomic_store(&resume_asked, false);
			atomic_store(&paused, true);
			pause_end = now + STRESS_MAX_PAUSE_S * 1000;
			announced = false;
		}
		if (atomic_load(&paused) && !announced &&
		    atomic_load(&parked) == STRESS_THREADS) {
			printf("paused %lu\n", atomic_fetch_add(&pauses, 1) + 1);
			fflush(stdout);
			announced = true;
		}
		bool resume = atomic_exchange(&resume_asked, false);
		if (atomic_load(&paused) && (resume || now >= pause_end)) {
			if (now >= pause_end)
				bad("pause not ended by SIGUSR2", -1, -1, ETIMEDOUT);
			atomic_store(&paused, false);
			printf("resumed %lu\n", atomic_load(&pauses));
			fflush(stdout);
			next = now + 1000;
		}
		if (!atomic_load(&paused) && now >= next) {
			printf("progress %lu\n", atomic_load(&total_ops));
			fflush(stdout);
			next += 1000;
		}
	}
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(workers[i].thread, NULL);
	printf("stress: done: ops %lu forks %lu execs %lu pauses %lu unexpected %lu\n",
	       atomic_load(&total_ops), atomic_load(&forks),
	       atomic_load(&execs), atomic_load(&pauses),
	       atomic_load(&unexpected));
	return atomic_load(&unexpected) ? 1 : 0;
}
