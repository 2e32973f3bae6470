// SPDX-License-Identifier: MIT
/*
 * The checkpoint signal and the recorder thread.
 *
 * The handler does async-signal-safe work only: it notes the request and
 * posts a semaphore.  The recorder thread, started when the process first
 * has an epoll set (and again in a forked child, at its first epoll call),
 * waits on the semaphore and writes the image.  sigaction() and signal()
 * are wrapped so that a program installing its own handler for the
 * checkpoint signal keeps dumps working and still receives every signal
 * that is not a dump request, and sees its own handler when it asks.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "shim"
#include "log.h"
#include "recorder.h"
#include "registry.h"
#include "shim.h"
#include "signame.h"


#define PENDING_SLOTS 8 /* distinct requests remembered between two dumps */

/* Written at load (shim_signal_init): SHIM_LOAD_DATA. */
static int ckpt_signal SHIM_LOAD_DATA;
static struct sigaction prog_action SHIM_LOAD_DATA; /* what the program asked for */
static bool prog_action_set SHIM_LOAD_DATA;
static pthread_mutex_t action_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * Spawns under way that hold SIG_IGN in the kernel (spawn_lock, taken
 * with every signal blocked: a handler of the thread may spawn too).
 */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned spawn_ignoring;

static sem_t dump_sem SHIM_LOAD_DATA;
/* (requester's uid << 32) | (nonce + 1); 0 = free */
static uint64_t pending[PENDING_SLOTS];
static int plain_pending;		/* kill(2) requests */
static int thread_state;		/* 0 none, 1 starting/running */

/*
 * AddressSanitizer's allocator (GCC 12's libasan) takes no lock across
 * fork: a child forked while the recorder thread is inside it (starting,
 * or writing an image) finds the allocator's lock held for ever and hangs
 * at its first malloc (an nginx worker, in initgroups).  glibc's malloc,
 * stdio and loader locks are made safe by fork itself, so only such
 * builds need fork to wait: the creator waits until the thread has
 * started, and a fork waits (5 s at most) until the image being written
 * is done, while the thread waits for the fork before it begins one.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_WAITS_FOR_RECORDER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_WAITS_FOR_RECORDER 1
#endif
#endif
#ifdef FORK_WAITS_FOR_RECORDER
static pthread_mutex_t serve_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t started_sem;
static __thread bool fork_holds_serve;
#endif
/*
 * Held while a thread starts the recorder thread, and by fork from prepare
 * to parent: a child forked while another thread was starting it would
 * find the lock held for ever, and hang at its first epoll call.
 */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool fork_holds_start;
static pid_t thread_pid;		/* process that owns the thread */
int shim_recorder_live SHIM_LOAD_DATA; /* shim.h */

/*
 * Run what the program wanted for a signal that is not a dump request.
 * The kernel already applied its SA_RESTART, SA_ONSTACK, SA_NODEFER and
 * sa_mask (install_action); SA_RESETHAND is the handler's to apply, as the
 * kernel would on delivery: the handler, alone, goes back to SIG_DFL.
 */
static void forward(int sig, siginfo_t *info, void *uctx)
{
	struct sigaction act = prog_action; /* racy copy: best effort */
	if (prog_action_set && (act.sa_flags & SA_RESETHAND) &&
	    act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN)
		__atomic_store_n(&prog_action.sa_handler, SIG_DFL,
				 __ATOMIC_RELAXED);
	if (!prog_action_set || act.sa_handler == SIG_DFL) {
		/* Default action of a real-time signal: terminate. */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		shim_real.sigaction(sig, &dfl, NULL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		return;
	}
	if (act.sa_handler == SIG_IGN)
		return;
	/* On the recorder thread (asleep, holding nothing), the program's
	 * handler is the program's code: its calls are recorded. */
	int saved_busy = shim_busy;
	shim_busy = 0;
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, info, uctx);
	else
		act.sa_handler(sig);
	shim_busy = saved_busy;
}

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
	int saved_errno = errno;
	bool queued = info && info->si_code == SI_QUEUE &&
		      ((uint32_t)info->si_value.sival_int & RECORDER_REQ_MASK) ==
			      RECORDER_REQ_MAGIC;
	bool plain = info && info->si_code == SI_USER &&
		     (!prog_action_set || prog_action.sa_handler == SIG_DFL);
	if (queued) {
		uint64_t v = ((uint64_t)info->si_uid << 32) |
			     (((uint32_t)info->si_value.sival_int &
			       RECORDER_NONCE_MASK) + 1);
		for (int i = 0; i < PENDING_SLOTS; i++) {
			uint64_t free_slot = 0;
			if (__atomic_compare_exchange_n(&pending[i], &free_slot,
							v, false,
							__ATOMIC_ACQ_REL,
							__ATOMIC_RELAXED))
				break;
		}
		sem_post(&dump_sem);
	} else if (plain) {
		__atomic_store_n(&plain_pending, 1, __ATOMIC_RELEASE);
		sem_post(&dump_sem);
	} else {
		forward(sig, info, uctx);
	}
	errno = saved_errno;
}

static void reinstall_action(void);

/*
 * Whether the socket connected to for a dump request belongs to the user who
 * asked (uid, from the request's siginfo) or to root.  A requester that gave
 * up frees the abstract name: anyone may bind it meanwhile.
 */
static bool requester_listens(int fd, uid_t uid, uint32_t nonce)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_error("dump request %u: cannot tell who listens: %s",
			  nonce, strerror(errno));
		return false;
	}
	if (cred.uid == uid || cred.uid == 0)
		return true;
	log_error("dump request %u: refused: uid %u asked, but uid %u (pid %d) listens", nonce, (unsigned)uid, (unsigned)cred.uid, (int)cred.pid);
	return false;
}

/* Stream an image to the `epollcr dump` of user uid waiting for nonce. */
static void serve_request(uint32_t nonce, uid_t uid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int len = recorder_socket_name(sa.sun_path, sizeof(sa.sun_path),
				       (int)getpid(), nonce);
	int fd = OWN_CREATE(
		shim_real.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (fd < 0) {
		log_error("cannot create the dump socket: %s", strerror(errno));
		return;
	}
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		log_error("dump request %u: cannot reach epollcr dump: %s",
			  nonce, strerror(errno));
	} else if (requester_listens(fd, uid, nonce)) {
		int ret = recorder_dump_fd(fd, shim_config.recorder_flags);
		if (ret < 0)
			log_error("dump request %u failed: %s", nonce,
				  strerror(-ret));
	}
	shim_real.close(fd);
}

/* A plain kill(2): write the image into the image directory. */
static void serve_plain(void)
{
	char dir[4096], why[4400], name[64];
	int dirfd = recorder_image_dir(shim_config.dir, dir, sizeof(dir), why,
				       sizeof(why));
	if (dirfd < 0) {
		log_error("no image directory: %s", why);
		return;
	}
	snprintf(name, sizeof(name), "epollcr-%d.img", (int)getpid());
	int ret = recorder_dump_at(dirfd, name, shim_config.recorder_flags);
	if (ret < 0)
		log_error("dump to %s/%s failed: %s", dir, name, strerror(-ret));
	else
		log_info("image written to %s/%s", dir, name);
	shim_real.close(dirfd);
}

/*
 * Sleep until a request: the checkpoint signal is unblocked on this
 * thread only while it waits, so `epollcr dump`, which signals this
 * thread alone, never interrupts a program thread, and the handler never
 * runs in the middle of a dump.  A request that arrives during a dump
 * stays pending on the thread until the next wait.
 */
static void recorder_wait(void)
{
	sigset_t sig, old;
	sigemptyset(&sig);
	sigaddset(&sig, ckpt_signal);
	pthread_sigmask(SIG_UNBLOCK, &sig, &old);
	while (sem_wait(&dump_sem) < 0 && errno == EINTR)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void *recorder_thread(void *arg)
{
	(void)arg;
	shim_busy = 1; /* the thread's own libc calls are not the program's */
#ifdef FORK_WAITS_FOR_RECORDER
	pthread_mutex_lock(&serve_lock);
	sem_post(&started_sem);
#endif
	for (;;) {
#ifdef FORK_WAITS_FOR_RECORDER
		pthread_mutex_unlock(&serve_lock);
		recorder_wait();
		pthread_mutex_lock(&serve_lock);
#else
		recorder_wait();
#endif
		/* Our descriptors out of the program's way (ownfd.h). */
		shim_own_section_begin();
		for (int i = 0; i < PENDING_SLOTS; i++) {
			uint64_t v = __atomic_exchange_n(&pending[i], 0,
							 __ATOMIC_ACQ_REL);
			if (v)
				serve_request((uint32_t)v - 1,
					      (uid_t)(v >> 32));
		}
		if (__atomic_exchange_n(&plain_pending, 0, __ATOMIC_ACQ_REL))
			serve_plain();
		shim_own_section_end();
	}
	return NULL;
}

void shim_recorder_need(void)
{
	pid_t me = getpid();
	if (__atomic_load_n(&thread_pid, __ATOMIC_ACQUIRE) == me)
		return;
	/*
	 * No handler of this thread (one that forks, or whose calls would be
	 * taken for the shim's own) while it holds the lock and starting the
	 * thread calls libc as the shim; the new thread inherits the mask: it
	 * unblocks its signal alone.
	 */
	struct shim_quiet q;
	shim_quiet_begin(&q);
	pthread_mutex_lock(&start_lock);
	if (thread_pid != me) {
		pthread_t tid;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
#ifdef FORK_WAITS_FOR_RECORDER
		sem_init(&started_sem, 0, 0);
#endif
		if (pthread_create(&tid, &attr, recorder_thread, NULL) == 0) {
#ifdef FORK_WAITS_FOR_RECORDER
			while (sem_wait(&started_sem) < 0 && errno == EINTR)
				;
#endif
			/* `epollcr dump` reads the signal from the name. */
			char name[16];
			snprintf(name, sizeof(name), "epollcr-sig%d",
				 ckpt_signal);
			pthread_setname_np(tid, name);
			__atomic_store_n(&thread_pid, me, __ATOMIC_RELEASE);
			__atomic_store_n(&shim_recorder_live, 1,
					 __ATOMIC_RELEASE);
		} else {
			log_error("cannot start the recorder thread: dumps of pid %d will time out", (int)me);
		}
		pthread_attr_destroy(&attr);
	}
	pthread_mutex_unlock(&start_lock);
	shim_quiet_end(&q);
}

/*
 * A fork waits until a recorder thread being started by another thread
 * has started (5 s at most: the start takes microseconds), so that the
 * child gets the start lock free and no half-made thread; under
 * AddressSanitizer it then waits for the image being written too.
 */
void shim_recorder_fork_prepare(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	fork_holds_start = pthread_mutex_timedlock(&start_lock, &until) == 0;
#ifdef FORK_WAITS_FOR_RECORDER
	if (__atomic_load_n(&thread_pid, __ATOMIC_ACQUIRE) != getpid())
		return;
	fork_holds_serve = pthread_mutex_timedlock(&serve_lock, &until) == 0;
#endif
}

void shim_recorder_fork_parent(void)
{
#ifdef FORK_WAITS_FOR_RECORDER
	if (fork_holds_serve) {
		fork_holds_serve = false;
		pthread_mutex_unlock(&serve_lock);
	}
#endif
	if (fork_holds_start) {
		fork_holds_start = false;
		pthread_mutex_unlock(&start_lock);
	}
}

void shim_recorder_fork_child(void)
{
#ifdef FORK_WAITS_FOR_RECORDER
	fork_holds_serve = false;
	pthread_mutex_init(&serve_lock, NULL);
#endif
	/* Held by fork itself, or (after a timeout) by another thread. */
	fork_holds_start = false;
	pthread_mutex_init(&start_lock, NULL);
	/*
	 * The thread did not survive fork; the child's next epoll_create or
	 * epoll_ctl through libc starts it again.
	 */
	__atomic_store_n(&shim_recorder_live, 0, __ATOMIC_RELAXED);
	sem_init(&dump_sem, 0, 0);
	memset(pending, 0, sizeof(pending));
	plain_pending = 0;
	pthread_mutex_init(&action_lock, NULL);
	/* Another thread's spawn held SIG_IGN: the handler back, here. */
	pthread_mutex_init(&spawn_lock, NULL);
	if (spawn_ignoring) {
		spawn_ignoring = 0;
		reinstall_action();
	}
	(void)thread_state;
}

/*
 * Put the shim's handler in the kernel for the checkpoint signal, with the
 * flags and mask of prog, the program's action, when that is a handler of
 * its own: whether the calls it interrupts restart (SA_RESTART: Python
 * installs its handlers without it, and a blocking read must return EINTR
 * for the program's handler to run), on which stack it runs (SA_ONSTACK),
 * and what is blocked while it runs (sa_mask, SA_NODEFER).  Otherwise
 * (prog NULL, SIG_DFL, SIG_IGN) the handler only takes dump requests:
 * SA_RESTART, nothing more blocked.  In *kernel_back, when not NULL, the
 * kernel's answer for it: the flags and restorer libc added.
 */
static void install_action(const struct sigaction *prog,
			   struct sigaction *kernel_back)
{
	struct sigaction sa = { .sa_sigaction = on_signal,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (prog && prog->sa_handler != SIG_DFL && prog->sa_handler != SIG_IGN) {
		sa.sa_flags = SA_SIGINFO |
			      (prog->sa_flags &
			       (SA_RESTART | SA_ONSTACK | SA_NODEFER));
		sa.sa_mask = prog->sa_mask;
	}
	if (shim_real.sigaction(ckpt_signal, &sa, NULL) == 0 && kernel_back)
		shim_real.sigaction(ckpt_signal, NULL, kernel_back);
}

/* The shim's handler back in the kernel, with the program's action's flags. */
static void reinstall_action(void)
{
	struct sigaction prog = prog_action;
	install_action(&prog, NULL);
}

/* Does k, an action the kernel holds, hold the shim's handler? */
static bool is_shim_action(const struct sigaction *k)
{
	return (k->sa_flags & SA_SIGINFO) && k->sa_sigaction == on_signal;
}

/*
 * Whether the program ignores the checkpoint signal (its action, not the
 * kernel's, which holds the shim's handler).
 */
static bool prog_ignores(void)
{
	return ckpt_signal && prog_action_set &&
	       __atomic_load_n(&prog_action.sa_handler, __ATOMIC_RELAXED) ==
		       SIG_IGN;
}

/* SIG_IGN in the kernel for the checkpoint signal (a pending one goes). */
static bool kernel_ignore(void)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigemptyset(&ign.sa_mask);
	return REAL(sigaction)(ckpt_signal, &ign, NULL) == 0;
}

bool shim_signal_exec_begin(void)
{
	if (!prog_ignores())
		return false;
	int saved_errno = errno;
	struct sigaction k = { .sa_handler = SIG_DFL };
	/*
	 * Only over the shim's handler: a vfork child (whose sigaction
	 * calls pass straight through) may have set its own action.
	 */
	bool changed = REAL(sigaction)(ckpt_signal, NULL, &k) == 0 &&
		       is_shim_action(&k) && kernel_ignore();
	errno = saved_errno;
	return changed;
}

void shim_signal_exec_end(bool changed)
{
	if (!changed)
		return;
	int saved_errno = errno;
	reinstall_action();
	errno = saved_errno;
}

/*
 * One spawn more (hold) or fewer (release) holding SIG_IGN in the kernel:
 * the first puts it there, the last puts the handler back.  errno kept.
 */
static void spawn_count(bool hold)
{
	int saved_errno = errno;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&spawn_lock);
	if (hold && spawn_ignoring++ == 0)
		kernel_ignore();
	else if (!hold && --spawn_ignoring == 0)
		reinstall_action();
	pthread_mutex_unlock(&spawn_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved_errno;
}

bool shim_signal_spawn_begin(void)
{
	if (!prog_ignores())
		return false;
	spawn_count(true);
	return true;
}

void shim_signal_spawn_end(bool held)
{
	if (held)
		spawn_count(false);
}

void shim_signal_init(void)
{
	const char *v = getenv("EPOLLCR_SIGNAL");
	ckpt_signal = signame_default();
	if (v && *v) {
		int sig = signame_parse(v);
		if (sig)
			ckpt_signal = sig;
		else
			log_error("EPOLLCR_SIGNAL=%s is not a usable signal; using %d", v, ckpt_signal);
	}
	shim_config.signal = ckpt_signal;
	sem_init(&dump_sem, 0, 0);
	/* Keep what the program inherited (an ignored signal stays ignored). */
	struct sigaction old;
	if (shim_real.sigaction(ckpt_signal, NULL, &old) == 0 &&
	    old.sa_handler == SIG_IGN) {
		prog_action = old;
		prog_action_set = true;
	}
	install_action(NULL, NULL);
}

/* The program's action as it reads it back (SIG_DFL before any). */
static struct sigaction prog_view(void)
{
	struct sigaction view = prog_action;
	if (!prog_action_set) {
		memset(&view, 0, sizeof(view));
		view.sa_handler = SIG_DFL;
	}
	return view;
}

/*
 * The checkpoint signal's action in a vfork child (Python's subprocess
 * resets there every caught signal before exec, keeping ignored ones):
 * its own, in the kernel, as it asks, and read back as the program's
 * while the shim's handler is still there.  The program's copy, in the
 * memory the child shares with its parent, stays as it is.
 */
static int vm_child_sigaction(const struct sigaction *act,
			      struct sigaction *oldact)
{
	struct sigaction k = { .sa_handler = SIG_DFL };
	int ret = REAL(sigaction)(ckpt_signal, act, &k);
	if (ret == 0 && oldact)
		*oldact = is_shim_action(&k) ? prog_view() : k;
	return ret;
}

SHIM_API int sigaction(int sig, const struct sigaction *act,
		       struct sigaction *oldact)
{
	if (sig != ckpt_signal || !ckpt_signal)
		return REAL(sigaction)(sig, act, oldact);
	if (shim_busy == SHIM_BUSY_VM_CHILD)
		return vm_child_sigaction(act, oldact);
	if (shim_busy)
		return REAL(sigaction)(sig, act, oldact);
	pthread_mutex_lock(&action_lock);
	struct sigaction prev = prog_view();
	if (act) {
		/*
		 * Kept as the kernel keeps it, so that the program reads back
		 * what it would without the shim: SIGKILL and SIGSTOP out of
		 * the mask, libc's restorer and its flag (SA_RESTORER) in.
		 */
		struct sigaction kern, want = *act;
		memset(&kern, 0, sizeof(kern));
		sigdelset(&want.sa_mask, SIGKILL);
		sigdelset(&want.sa_mask, SIGSTOP);
		install_action(&want, &kern);
		want.sa_flags |= kern.sa_flags &
				 ~(SA_SIGINFO | SA_RESTART | SA_ONSTACK |
				   SA_NODEFER);
		want.sa_restorer = kern.sa_restorer;
		prog_action = want;
		prog_action_set = true;
	}
	pthread_mutex_unlock(&action_lock);
	if (oldact)
		*oldact = prev;
	return 0;
}

SHIM_API sighandler_t signal(int sig, sighandler_t handler)
{
	/* A vfork child's goes through sigaction() too (its own action). */
	if (sig != ckpt_signal || !ckpt_signal || shim_busy == SHIM_BUSY_OWN)
		return REAL(signal)(sig, handler);
	/* As glibc's signal(): BSD semantics, the signal blocked in its
	 * handler. */
	struct sigaction act = { .sa_handler = handler,
				 .sa_flags = SA_RESTART },
			 old = { .sa_handler = SIG_ERR };
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR; /* a vfork child's real call failed */
	return old.sa_handler;
}
