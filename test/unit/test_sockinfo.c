// SPDX-License-Identifier: MIT
/*
 * sockinfo_fill(): socket targets described from sock_diag alone, as for
 * another process whose fds cannot be copied (no getsockname).  Each test
 * makes real sockets here, gives sockinfo_fill targets that only carry
 * their "socket:[INODE]" path, and compares what it filled in with what
 * the kernel says of the socket through its descriptor (getsockname,
 * getpeername, SO_ACCEPTCONN...).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockinfo.h"

/* A target known only by the path of fd, as from /proc/PID/fd of another. */
static struct image_target *bare_target(struct image *img, int fd)
{
	struct stat st;
	char path[64];
	struct image_target *t = image_add_target(img, IMAGE_KIND_SOCKET);

	assert_non_null(t);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(path, sizeof(path), "socket:[%lu]", (unsigned long)st.st_ino);
	t->path = strdup(path);
	t->origin = IMAGE_ORIGIN_KERNEL;
	t->u.sock.backlog = -1;
	return t;
}

static int tcp_listener(int family, int backlog)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t len;
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr =
			htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The target's address equals getsockname(fd). */
static void assert_addr(const struct image_socket *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(s->addr_len, len);
	assert_memory_equal(s->addrp, &ss, len);
}

static void test_tcp_listeners(void **state)
{
	(void)state;
	struct image img;
	int v4 = tcp_listener(AF_INET, 7), v6 = tcp_listener(AF_INET6, 9);

	assert_true(v4 >= 0);
	image_init(&img);
	struct image_target *t4 = bare_target(&img, v4);
	struct image_target *t6 = v6 >= 0 ? bare_target(&img, v6) : NULL;
	uint32_t id4 = t4->id, id6 = t6 ? t6->id : 0;

	assert_int_equal(sockinfo_fill(&img), 0);
	t4 = image_target_by_id(&img, id4);
	assert_int_equal(t4->u.sock.domain, AF_INET);
	assert_int_equal(t4->u.sock.type, SOCK_STREAM);
	assert_int_equal(t4->u.sock.protocol, IPPROTO_TCP);
	assert_int_equal(t4->u.sock.backlog, 7);
	assert_int_equal(t4->u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND);
	assert_addr(&t4->u.sock, v4);
	if (v6 >= 0) {
		t6 = image_target_by_id(&img, id6);
		assert_int_equal(t6->u.sock.domain, AF_INET6);
		assert_int_equal(t6->u.sock.backlog, 9);
		assert_true(t6->u.sock.flags & IMAGE_SOCK_LISTENING);
		assert_addr(&t6->u.sock, v6);
		close(v6);
	}
	/* one note: what sock_diag does not show */
	assert_int_equal(img.ndiags, 1);
	assert_non_null(strstr(img.diags[0].message, "SO_REUSEADDR and SO_REUSEPORT are not known"));
	image_free(&img);
	close(v4);
}

/* A target described through its fd keeps all of it, gains the backlog. */
static void test_backlog_only(void **state)
{
	(void)state;
	struct image img;
	int fd = tcp_listener(AF_INET, 3);

	assert_true(fd >= 0);
	image_init(&img);
	struct image_target *t = bare_target(&img, fd);
	t->u.sock.domain = AF_INET;
	t->u.sock.type = SOCK_STREAM;
	t->u.sock.flags = IMAGE_SOCK_LISTENING | IMAGE_SOCK_REUSEADDR;
	assert_int_equal(sockinfo_fill(&img), 0);
	t = &img.targets[0];
	assert_int_equal(t->u.sock.backlog, 3);
	assert_int_equal(t->u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_REUSEADDR);
	assert_int_equal(t->u.sock.addr_len, 0); /* untouched */
	image_free(&img);
	close(fd);
}

static void test_udp(void **state)
{
	(void)state;
	struct image img;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);

	assert_int_equal(bind(a, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(a, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(connect(b, (struct sockaddr *)&sa, sizeof(sa)), 0);
	image_init(&img);
	bare_target(&img, a);
	bare_target(&img, b);
	assert_int_equal(sockinfo_fill(&img), 0);
	const struct image_socket *sa_img = &img.targets[0].u.sock;
	const struct image_socket *sb_img = &img.targets[1].u.sock;
	assert_int_equal(sa_img->domain, AF_INET);
	assert_int_equal(sa_img->type, SOCK_DGRAM);
	assert_int_equal(sa_img->protocol, IPPROTO_UDP);
	assert_int_equal(sa_img->flags, IMAGE_SOCK_BOUND);
	assert_addr(sa_img, a);
	assert_int_equal(sb_img->flags, IMAGE_SOCK_BOUND | IMAGE_SOCK_CONNECTED);
	assert_int_equal(sb_img->peer_len, sizeof(sa));
	assert_memory_equal(sb_img->peerp, &sa, sizeof(sa));
	assert_addr(sb_img, b);
	image_free(&img);
	close(a);
	close(b);
}

/* Unix: domain, type, listening, backlog and name from unix_diag. */
static void test_unix(void **state)
{
	(void)state;
	struct image img;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sockaddr_un pa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/epollcr-sockinfo-XXXXXX";
	int l = socket(AF_UNIX, SOCK_SEQPACKET, 0), sp[2];
	int lp = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
		 "epollcr-test-sockinfo-%d", (int)getpid());
	assert_int_equal(bind(l, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
					  1 + strlen(sa.sun_path + 1))),
			 0);
	assert_int_equal(listen(l, 2), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(pa.sun_path, sizeof(pa.sun_path), "%s/l", dir);
	assert_int_equal(bind(lp, (struct sockaddr *)&pa, sizeof(pa)), 0);
	assert_int_equal(listen(lp, 4), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	image_init(&img);
	/* what the kernel view knows of a unix socket without a descriptor:
	 * its domain (fdinfo has scm_fds), no type */
	bare_target(&img, l)->u.sock.domain = AF_UNIX;
	bare_target(&img, sp[0]);
	bare_target(&img, lp);
	assert_int_equal(sockinfo_fill(&img), 0);
	assert_int_equal(img.targets[0].u.sock.domain, AF_UNIX);
	assert_int_equal(img.targets[0].u.sock.type, SOCK_SEQPACKET);
	assert_int_equal(img.targets[0].u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND);
	assert_int_equal(img.targets[0].u.sock.backlog, 2);
	assert_addr(&img.targets[0].u.sock, l); /* the abstract name */
	assert_int_equal(img.targets[1].u.sock.type, SOCK_DGRAM);
	assert_true(img.targets[1].u.sock.flags & IMAGE_SOCK_CONNECTED);
	assert_addr(&img.targets[1].u.sock, sp[0]); /* unnamed */
	assert_int_equal(img.targets[2].u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND);
	assert_int_equal(img.targets[2].u.sock.backlog, 4);
	assert_addr(&img.targets[2].u.sock, lp); /* the path, with its NUL */
	/* names known: only the note */
	assert_int_equal(img.ndiags, 1);
	assert_non_null(strstr(img.diags[0].message, "3 sockets were described from sock_diag alone"));
	image_free(&img);
	close(l);
	close(lp);
	unlink(pa.sun_path);
	rmdir(dir);
	close(sp[0]);
	close(sp[1]);
}

/* A unix listener described through its fd gains its backlog alone. */
static void test_unix_backlog_only(void **state)
{
	(void)state;
	struct image img;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
		 "epollcr-test-sockinfo-b-%d", (int)getpid());
	assert_int_equal(bind(l, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
					  1 + strlen(sa.sun_path + 1))),
			 0);
	assert_int_equal(listen(l, 11), 0);
	image_init(&img);
	struct image_target *t = bare_target(&img, l);
	t->u.sock.domain = AF_UNIX;
	t->u.sock.type = SOCK_STREAM;
	t->u.sock.flags = IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND;
	assert_int_equal(sockinfo_fill(&img), 0);
	assert_int_equal(img.targets[0].u.sock.backlog, 11);
	assert_int_equal(img.targets[0].u.sock.flags,
			 IMAGE_SOCK_LISTENING | IMAGE_SOCK_BOUND);
	assert_int_equal(img.ndiags, 0); /* its name is known: no diagnostic */
	image_free(&img);
	close(l);
}

/* Nothing to ask: no netlink traffic, no change. */
static void test_nothing_to_do(void **state)
{
	(void)state;
	struct image img;

	image_init(&img);
	struct image_target *t = image_add_target(&img, IMAGE_KIND_SOCKET);
	t->u.sock.domain = AF_INET;
	t->u.sock.type = SOCK_DGRAM;
	t->u.sock.backlog = -1;
	t->path = strdup("socket:[1]");
	assert_int_equal(sockinfo_fill(&img), 0);
	assert_int_equal(img.targets[0].u.sock.backlog, -1);
	assert_int_equal(img.ndiags, 0);
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_listeners),
		cmocka_unit_test(test_backlog_only),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_unix_backlog_only),
		cmocka_unit_test(test_nothing_to_do),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
