/* SPDX-License-Identifier: MIT */
/*
 * The one escaping rule for every string that comes from an image (or any
 * other untrusted source) and is printed: to a terminal, a log, an error
 * buffer or JSON.  Kept as they are: printable ASCII and valid UTF-8 that
 * is neither a C1 control nor a bidirectional control.  Escaped:
 * - a backslash, as two (text) or \\ (JSON), and in JSON a double quote;
 * - C0 controls (newline included) and DEL: \xNN in text, \u00NN in JSON;
 * - C1 controls U+0080..U+009F and the bidirectional controls U+061C,
 *   U+200E, U+200F, U+202A..U+202E, U+2066..U+2069, given as valid UTF-8:
 *   \uNNNN (text and JSON);
 * - every byte that is not part of valid UTF-8 (raw 0x80..0xff, overlong
 *   forms, surrogates, truncated sequences): \xNN in text, \u00NN in JSON
 *   (documented as such in docs/image-format.md).
 * So escaped text is one line of printable characters that cannot move
 * the cursor, change colours or reorder what follows it.
 */
#ifndef EPOLLCR_ESCAPE_H
#define EPOLLCR_ESCAPE_H

#include <stddef.h>

#define ESCAPE_JSON 0x1 /* JSON string contents instead of text */

/*
 * Escape the n bytes at src, handing the result to emit(ctx, piece,
 * piece_len) in order.
 */
void escape_emit(const char *src, size_t n, unsigned flags,
		 void (*emit)(void *ctx, const char *piece, size_t piece_len),
		 void *ctx);

/*
 * Escape the n bytes at src into dst (dst_len bytes, always
 * NUL-terminated when dst_len > 0, cut only between whole pieces).
 * Returns the length of the whole escaped text, as snprintf does.
 */
size_t escape_bytes(char *dst, size_t dst_len, const char *src, size_t n,
		    unsigned flags);

/* Text escape of the string s into dst; "(none)" for NULL.  Returns dst. */
const char *escape_str(char *dst, size_t dst_len, const char *s);

#endif
