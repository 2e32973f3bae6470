// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the image reader.  Any input must be read or
 * rejected with one "offset N: ..." line, never crash, hang or leak.  What
 * reads must render as text and JSON, be written again by the writer, and
 * that output must read back and write to the very same bytes.  Built with
 * -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which makes the reader skip
 * the checksum comparison so that mutated inputs get past END.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image_io.h"
#include "log.h"
#include "show.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes image_write_fd() gives for img, in *buf (malloc'ed). */
static size_t write_to_memory(const struct image *img, int memfd,
			      uint8_t **buf)
{
	off_t len;

	if (ftruncate(memfd, 0) < 0 || lseek(memfd, 0, SEEK_SET) < 0)
		abort();
	if (image_write_fd(img, memfd) != 0)
		abort(); /* the reader took it: the writer must too */
	len = lseek(memfd, 0, SEEK_END);
	*buf = malloc((size_t)len + 1);
	if (!*buf || pread(memfd, *buf, (size_t)len, 0) != len)
		abort();
	return (size_t)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int sink = -1, memfd = -1;
	struct image img, again;
	char err[512];
	uint8_t *first, *second;
	size_t first_len, second_len;

	if (sink < 0) {
		sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
		memfd = memfd_create("fuzz", MFD_CLOEXEC);
		log_setup(-1, LOG_LEVEL_ERROR);
		if (sink < 0 || memfd < 0)
			abort();
	}
	if (image_read_mem(data, size, &img, err, sizeof(err)) != 0) {
		if (strncmp(err, "offset ", 7) || strchr(err, '\n'))
			abort();
		if (img.targets || img.watches || img.ntargets || img.nwatches)
			abort();
		return 0;
	}
	if (show_image_text(&img, sink, SHOW_NO_ADDR2LINE) != 0 ||
	    show_image_json(&img, sink) != 0)
		abort();
	first_len = write_to_memory(&img, memfd, &first);
	if (image_read_mem(first, first_len, &again, err, sizeof(err)) != 0)
		abort();
	second_len = write_to_memory(&again, memfd, &second);
	if (first_len != second_len || memcmp(first, second, first_len))
		abort();
	free(first);
	free(second);
	image_free(&again);
	image_free(&img);
	return 0;
}
