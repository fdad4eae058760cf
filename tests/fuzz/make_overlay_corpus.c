/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_overlay under DIR/overlay: real overlay.log
 * files made through the overlay API on a 64-sector disk, and damaged copies
 * of them. Not part of the build; to regenerate:
 *
 *   make build/libcirc.a
 *   cc -std=gnu11 -D_GNU_SOURCE -I. -o build/make-overlay-corpus \
 *      tests/fuzz/make_overlay_corpus.c build/libcirc.a \
 *      $(pkg-config --libs fuse3 libcurl libzstd libcrypto libmicrohttpd) -pthread
 *   build/make-overlay-corpus tests/fuzz/corpus
 *
 * The output is the same on every run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/file.h"
#include "vdisk/overlay.h"

#define N_SECTORS 64
#define DISK_SIZE ((uint64_t)N_SECTORS * OVERLAY_SECTOR)

static char work[] = "/tmp/circ-overlay-corpus-XXXXXX";
static const char *out_dir;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_overlay_corpus: %s: %s\n", what, why);
	exit(1);
}

static void emit(const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/overlay", out_dir);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path, strerror(errno));
	snprintf(path, sizeof(path), "%s/overlay/%s", out_dir, name);
	f = fopen(path, "we");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f))
		die(path, strerror(errno));
}

static void work_file(const char *name, char path[4096])
{
	snprintf(path, 4096, "%s/%s", work, name);
}

/* Starts a new overlay in the work directory. */
static struct overlay *fresh(void)
{
	static const char *const files[] = { "overlay.map", "overlay.log", "overlay.data" };
	struct overlay *o;
	struct circ_err err;
	char path[4096];

	for (size_t i = 0; i < 3; i++) {
		work_file(files[i], path);
		unlink(path);
	}
	if (overlay_open(work, DISK_SIZE, &o, &err))
		die("overlay_open", err.msg);
	return o;
}

static void wr(struct overlay *o, uint64_t s, uint8_t fill)
{
	uint8_t buf[OVERLAY_SECTOR];

	memset(buf, fill, sizeof(buf));
	if (overlay_write_sector(o, s, buf))
		die("overlay_write_sector", "failed");
}

static void zero(struct overlay *o, uint64_t s)
{
	if (overlay_zero_sector(o, s))
		die("overlay_zero_sector", "failed");
}

static void flush(struct overlay *o)
{
	if (overlay_flush(o))
		die("overlay_flush", "failed");
}

static void read_log(struct buf *out)
{
	struct circ_err err;
	char path[4096];

	work_file("overlay.log", path);
	if (file_read_all(path, 1 << 20, out, &err))
		die(path, err.msg);
}

int main(int argc, char **argv)
{
	struct buf log = { 0 }, b = { 0 };
	struct overlay *o;
	size_t len1, len2;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	if (!mkdtemp(work))
		die(work, strerror(errno));

	/* One batch of a few writes. */
	o = fresh();
	for (uint64_t s = 0; s < 4; s++)
		wr(o, s, (uint8_t)(s + 1));
	flush(o);
	overlay_close(o);
	read_log(&log);
	emit("valid-one-batch", log.data, log.len);
	/* Its tail torn, and garbage after it. */
	emit("torn-one-batch", log.data, log.len - 5);
	emit("torn-header-only", log.data, 48);
	emit("torn-half-header", log.data, 20);
	buf_reset(&b);
	buf_append(&b, log.data, log.len);
	buf_append(&b, "garbage after the last batch", 28);
	emit("garbage-tail", b.data, b.len);

	/* Several batches: overwrites, discards, a rewrite of a discarded sector. */
	o = fresh();
	wr(o, 1, 1);
	wr(o, 2, 2);
	zero(o, 3);
	flush(o);
	read_log(&log);
	len1 = log.len;
	wr(o, 1, 11);
	zero(o, 2);
	wr(o, 3, 3);
	wr(o, 63, 63);
	flush(o);
	read_log(&log);
	len2 = log.len;
	for (uint64_t s = 10; s < 20; s++)
		zero(o, s);
	wr(o, 5, 5);
	flush(o);
	overlay_close(o);
	read_log(&log);
	emit("valid-three-batches", log.data, log.len);
	/* The middle batch missing: a gap in the sequence numbers. */
	buf_reset(&b);
	buf_append(&b, log.data, len1);
	buf_append(&b, log.data + len2, log.len - len2);
	emit("seq-gap", b.data, b.len);
	/* The first batch again at the end: already applied. */
	buf_reset(&b);
	buf_append(&b, log.data, log.len);
	buf_append(&b, log.data, len1);
	emit("replayed-batch", b.data, b.len);
	/* A flipped byte in the middle batch's body. */
	buf_reset(&b);
	buf_append(&b, log.data, log.len);
	b.data[len1 + 50] ^= 1;
	emit("bad-checksum-middle", b.data, b.len);
	/* Only the second and third batches: they do not start at sequence 1. */
	emit("starts-at-seq-2", log.data + len1, log.len - len1);

	/* Every sector in one batch: the largest count a batch may have. */
	o = fresh();
	for (uint64_t s = 0; s < N_SECTORS; s++)
		zero(o, s);
	flush(o);
	for (uint64_t s = 0; s < N_SECTORS; s += 2)
		wr(o, s, (uint8_t)s);
	flush(o);
	overlay_close(o);
	read_log(&log);
	emit("valid-whole-disk", log.data, log.len);

	/* Slots reused across flushes: the same sector rewritten many times. */
	o = fresh();
	for (int v = 0; v < 12; v++) {
		wr(o, 7, (uint8_t)v);
		wr(o, (uint64_t)(8 + v), (uint8_t)v);
		flush(o);
	}
	overlay_close(o);
	read_log(&log);
	emit("valid-slot-reuse", log.data, log.len);

	/* After a reset: the log follows a checkpoint that is not there. */
	o = fresh();
	wr(o, 1, 1);
	flush(o);
	if (overlay_reset(o))
		die("overlay_reset", "failed");
	wr(o, 2, 2);
	flush(o);
	overlay_close(o);
	read_log(&log);
	emit("after-reset", log.data, log.len);

	emit("empty", "", 0);

	for (size_t i = 0; i < 3; i++) {
		static const char *const files[] = { "overlay.map", "overlay.log", "overlay.data" };
		char path[4096];

		work_file(files[i], path);
		unlink(path);
	}
	rmdir(work);
	buf_free(&log);
	buf_free(&b);
	return 0;
}
