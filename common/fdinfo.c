// SPDX-License-Identifier: MIT
/*
 * Parsing /proc/PID/fdinfo text: the `tfd:` lines of an epoll fd and the
 * "key: value" lines of the other kinds.  The text comes from the kernel
 * but is treated as hostile: every scan is bounded by its length, numbers
 * are checked for overflow, nothing is allocated.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "kind_internal.h"
#include "kview.h"

/* A position in a line being parsed: [p, end). */
struct cursor {
	const char *p;
	const char *end;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Skip blanks; returns how many were skipped. */
static size_t skip_blanks(struct cursor *c)
{
	size_t n = 0;

	while (c->p < c->end && is_blank(*c->p)) {
		c->p++;
		n++;
	}
	return n;
}

/* Consume the literal word (no NUL inside the text is matched). */
static bool expect_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	c->p += n;
	return true;
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

bool fdinfo_parse_number(const char *s, size_t len, unsigned base,
			 unsigned max_digits, uint64_t *out, size_t *used)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		int d = digit_value(s[i]);

		if (d >= (int)base)
			break;
		/* Overflow by the flags of one multiply and one add, not a
		 * division per digit (restore's verify parses every watch). */
		if (i >= max_digits ||
		    __builtin_mul_overflow(v, (uint64_t)base, &v) ||
		    __builtin_add_overflow(v, (uint64_t)d, &v))
			return false;
	}
	if (i == 0)
		return false;
	*out = v;
	*used = i;
	return true;
}

/*
 * Blanks (optional when leading_blank is false), the key, blanks, then an
 * unsigned number of base with at most max_digits digits and at most max.
 */
static bool field(struct cursor *c, bool leading_blank, const char *key,
		  unsigned base, unsigned max_digits, uint64_t max,
		  uint64_t *out)
{
	size_t used;

	if (skip_blanks(c) == 0 && leading_blank)
		return false;
	if (!expect_word(c, key))
		return false;
	skip_blanks(c);
	if (!fdinfo_parse_number(c->p, (size_t)(c->end - c->p), base,
				 max_digits, out, &used) ||
	    *out > max)
		return false;
	c->p += used;
	return true;
}

/* The field `pos:%lli`: a signed decimal, value ignored. */
static bool pos_field(struct cursor *c)
{
	uint64_t v;
	size_t used;

	if (skip_blanks(c) == 0 || !expect_word(c, "pos:"))
		return false;
	skip_blanks(c);
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (!fdinfo_parse_number(c->p, (size_t)(c->end - c->p), 10, 19, &v,
				 &used))
		return false;
	c->p += used;
	return true;
}

/*
 * One `tfd:` line, [line, end) without its newline, in the kernel's format
 * "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x", possibly
 * followed by further blank-separated fields of later kernels.
 */
static bool parse_tfd_line(const char *line, const char *end,
			   struct fdinfo_watch *w)
{
	struct cursor c = { line, end };
	uint64_t tfd, events, data, ino, sdev;

	if (!field(&c, false, "tfd:", 10, 10, INT32_MAX, &tfd) ||
	    !field(&c, true, "events:", 16, 8, UINT32_MAX, &events) ||
	    !field(&c, true, "data:", 16, 16, UINT64_MAX, &data) ||
	    !pos_field(&c) ||
	    !field(&c, true, "ino:", 16, 16, UINT64_MAX, &ino) ||
	    !field(&c, true, "sdev:", 16, 8, UINT32_MAX, &sdev))
		return false;
	if (c.p < c.end && !is_blank(*c.p))
		return false;
	for (const char *q = c.p; q < c.end; q++)
		if (*q == '\0')
			return false;
	w->tfd = (int32_t)tfd;
	w->events = (uint32_t)events;
	w->data = data;
	w->ino = ino;
	w->sdev = (uint32_t)sdev;
	return true;
}

/* The `flags:` line: an octal number, then nothing but blanks. */
static bool parse_flags_line(const char *line, const char *end,
			     unsigned *flags)
{
	struct cursor c = { line, end };
	uint64_t v;

	if (!field(&c, false, "flags:", 8, 22, UINT_MAX, &v))
		return false;
	skip_blanks(&c);
	if (c.p != c.end)
		return false;
	*flags = (unsigned)v;
	return true;
}

int fdinfo_parse_epoll(const char *text, size_t len, unsigned *file_flags,
		       int (*on_watch)(void *ctx, const struct fdinfo_watch *w),
		       void *ctx)
{
	const char *p = text, *stop = text + len;

	while (p < stop) {
		const char *nl = memchr(p, '\n', (size_t)(stop - p));
		const char *end = nl ? nl : stop;
		size_t n = (size_t)(end - p);

		if (n >= 4 && memcmp(p, "tfd:", 4) == 0) {
			struct fdinfo_watch w;

			/* No newline: the text was cut inside this line. */
			if (!nl || !parse_tfd_line(p, end, &w))
				return -EINVAL;
			if (on_watch) {
				int ret = on_watch(ctx, &w);

				if (ret)
					return ret;
			}
		} else if (n >= 6 && memcmp(p, "flags:", 6) == 0) {
			unsigned flags;

			if (!parse_flags_line(p, end, &flags))
				return -EINVAL;
			if (file_flags)
				*file_flags = flags;
		}
		p = nl ? nl + 1 : stop;
	}
	return 0;
}

const char *fdinfo_value(const char *fdinfo, const char *key)
{
	size_t key_len = strlen(key);
	const char *p = fdinfo;

	while (p && *p) {
		if (strncmp(p, key, key_len) == 0) {
			p += key_len;
			while (is_blank(*p))
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* Length of the rest of the line at s. */
static size_t line_len(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl ? (size_t)(nl - s) : strlen(s);
}

bool fdinfo_u64(const char *fdinfo, const char *key, unsigned base,
		uint64_t *out)
{
	const char *v = fdinfo ? fdinfo_value(fdinfo, key) : NULL;
	size_t used, len;

	if (!v)
		return false;
	len = line_len(v);
	if (!fdinfo_parse_number(v, len, base, 24, out, &used))
		return false;
	return used == len || is_blank(v[used]);
}

bool fdinfo_timespec_ns(const char *fdinfo, const char *key, uint64_t *ns)
{
	const char *v = fdinfo ? fdinfo_value(fdinfo, key) : NULL;
	struct cursor c;
	uint64_t sec, nsec;
	size_t used;

	if (!v)
		return false;
	c.p = v;
	c.end = v + line_len(v);
	if (!expect_word(&c, "("))
		return false;
	skip_blanks(&c);
	if (!fdinfo_parse_number(c.p, (size_t)(c.end - c.p), 10, 20, &sec,
				 &used))
		return false;
	c.p += used;
	if (!expect_word(&c, ","))
		return false;
	skip_blanks(&c);
	if (!fdinfo_parse_number(c.p, (size_t)(c.end - c.p), 10, 20, &nsec,
				 &used) ||
	    nsec >= 1000000000u)
		return false;
	c.p += used;
	if (!expect_word(&c, ")"))
		return false;
	if (sec > (UINT64_MAX - nsec) / 1000000000u)
		*ns = UINT64_MAX;
	else
		*ns = sec * 1000000000u + nsec;
	return true;
}
