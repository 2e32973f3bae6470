// SPDX-License-Identifier: MIT
/* The one escaping rule for untrusted strings (see escape.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"

/*
 * Length of the valid UTF-8 sequence at p (n bytes left) and its code
 * point, or 0 when the bytes are not valid UTF-8 (overlong, surrogate,
 * above U+10FFFF, truncated).
 */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp_out)
{
	uint32_t cp, min;
	size_t len;

	if (p[0] < 0x80) {
		*cp_out = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f, min = 0x80;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f, min = 0x800;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return len;
}

/* C1 controls and the bidirectional controls. */
static bool cp_dangerous(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

void escape_emit(const char *src, size_t n, unsigned flags,
		 void (*emit)(void *ctx, const char *piece, size_t piece_len),
		 void *ctx)
{
	const unsigned char *p = (const unsigned char *)src;
	bool json = flags & ESCAPE_JSON;
	size_t i = 0, run = 0;
	char esc[16];

	while (i < n) {
		uint32_t cp = 0;
		size_t k = utf8_decode(p + i, n - i, &cp);
		int len = 0;

		if (k && !cp_dangerous(cp) && (k > 1 || (cp >= 0x20 &&
			 cp != 0x7f && cp != '\\' && !(json && cp == '"')))) {
			i += k;
			run += k;
			continue;
		}
		if (run)
			emit(ctx, (const char *)p + i - run, run);
		run = 0;
		if (k && (cp == '\\' || cp == '"'))
			len = snprintf(esc, sizeof(esc), "\\%c", (char)cp);
		else if (k && json && (cp == '\n' || cp == '\t' || cp == '\r'))
			len = snprintf(esc, sizeof(esc), "\\%c",
				       cp == '\n'   ? 'n'
				       : cp == '\t' ? 't'
						    : 'r');
		else if (k && (cp >= 0x80 || json))
			len = snprintf(esc, sizeof(esc), "\\u%04x", cp);
		else if (json)
			len = snprintf(esc, sizeof(esc), "\\u00%02x", p[i]);
		else
			len = snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
		emit(ctx, esc, (size_t)len);
		i += k ? k : 1;
	}
	if (run)
		emit(ctx, (const char *)p + i - run, run);
}

struct escape_buf {
	char *dst;
	size_t cap, len; /* cap: bytes usable before the NUL */
	bool full;
};

/*
 * Append a piece; when it does not fit, an escape is dropped whole and a
 * run of plain text is cut before the first UTF-8 sequence that does not
 * fit.  Nothing is appended after the first cut.
 */
static void buf_emit(void *ctx, const char *piece, size_t piece_len)
{
	struct escape_buf *b = ctx;
	size_t k = piece_len;

	if (!b->full && b->len + piece_len > b->cap) {
		b->full = true;
		k = piece[0] == '\\' ? 0 : b->cap - b->len;
		while (k && (piece[k] & 0xc0) == 0x80)
			k--;
		memcpy(b->dst + b->len, piece, k);
		b->dst[b->len + k] = '\0';
	} else if (!b->full) {
		memcpy(b->dst + b->len, piece, k);
		b->dst[b->len + k] = '\0';
	}
	b->len += piece_len;
}

size_t escape_bytes(char *dst, size_t dst_len, const char *src, size_t n,
		    unsigned flags)
{
	struct escape_buf b = { dst, dst_len ? dst_len - 1 : 0, 0, !dst_len };

	if (dst_len)
		dst[0] = '\0';
	escape_emit(src, n, flags, buf_emit, &b);
	return b.len;
}

const char *escape_str(char *dst, size_t dst_len, const char *s)
{
	if (!s)
		snprintf(dst, dst_len, "(none)");
	else
		escape_bytes(dst, dst_len, s, strlen(s), 0);
	return dst;
}
