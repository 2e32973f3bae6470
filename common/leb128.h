/* SPDX-License-Identifier: MIT */
/*
 * Unsigned LEB128 varints and zigzag deltas, as the image format stores its
 * integer fields (docs/image-format.md).  Header-only: the writer, the
 * reader and the test fixtures share it.
 */
#ifndef EPOLLCR_LEB128_H
#define EPOLLCR_LEB128_H

#include <stddef.h>
#include <stdint.h>

#define LEB128_MAX_LEN 10 /* bytes of the longest varint: a 64-bit value */

/* Outcomes of leb128_get(). */
enum leb128_status {
	LEB128_OK = 0,
	LEB128_TRUNCATED = 1, /* the buffer ends before the last byte */
	LEB128_OVERFLOW = 2,  /* more than 64 bits, or longer than 10 bytes */
	LEB128_OVERLONG = 3,  /* not minimal: a redundant trailing 0x80..0x00 */
};

/* Number of bytes (1..LEB128_MAX_LEN) of the varint of v. */
static inline unsigned leb128_size(uint64_t v)
{
	unsigned n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Store the varint of v at out, which has room for LEB128_MAX_LEN bytes.
 * Returns the number of bytes written.
 */
static inline unsigned leb128_put(uint8_t *out, uint64_t v)
{
	unsigned n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/*
 * Decode one varint from the len bytes at buf.  On LEB128_OK, *value is the
 * number and *used the bytes it took; the other outcomes leave both alone.
 * A varint is at most LEB128_MAX_LEN bytes and its encoding must be minimal
 * (the last byte is not 0 unless the varint is that single byte).
 */
static inline enum leb128_status leb128_get(const uint8_t *buf, size_t len,
					    uint64_t *value, unsigned *used)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < LEB128_MAX_LEN; i++) {
		if (i >= len)
			return LEB128_TRUNCATED;
		uint8_t b = buf[i];
		/* The tenth byte carries bit 63 only. */
		if (i == LEB128_MAX_LEN - 1 && b > 1)
			return LEB128_OVERFLOW;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return LEB128_OVERLONG;
			*value = v;
			*used = i + 1;
			return LEB128_OK;
		}
	}
	return LEB128_OVERFLOW; /* not reached: the tenth byte stops it */
}

/*
 * Zigzag: a two's complement 64-bit difference (a - b computed in uint64_t)
 * as an unsigned number that is small when the difference is small either
 * way: 0, -1, 1, -2... become 0, 1, 2, 3...  A bijection on 64 bits.
 */
static inline uint64_t zigzag_encode(uint64_t diff)
{
	return (diff << 1) ^ (0 - (diff >> 63));
}

/* The inverse of zigzag_encode(): back to a two's complement difference. */
static inline uint64_t zigzag_decode(uint64_t z)
{
	return (z >> 1) ^ (0 - (z & 1));
}

#endif
