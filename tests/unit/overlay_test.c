/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define SECTOR   OVERLAY_SECTOR
#define NSECT    64
#define DISK     ((uint64_t)NSECT * SECTOR)
#define TAG_ZERO UINT64_MAX /* in a model: the sector was discarded; 0: it reads the base */

/*
 * Sectors describe themselves: the first 8 bytes are a tag, the rest derive
 * from it, so any read can tell a whole, right sector from a torn or stray one.
 */
static void fill_sector(uint8_t *buf, uint64_t tag)
{
	fill_random(buf + 8, SECTOR - 8, tag);
	memcpy(buf, &tag, 8);
}

/* The tag of a self-consistent sector, or 0 for one that is not. */
static uint64_t sector_tag(const uint8_t *buf)
{
	uint8_t want[SECTOR];
	uint64_t tag;

	memcpy(&tag, buf, 8);
	if (tag == 0 || tag == TAG_ZERO)
		return 0;
	fill_sector(want, tag);
	return memcmp(want, buf, SECTOR) == 0 ? tag : 0;
}

static struct overlay *ov_open(uint64_t size)
{
	struct overlay *o = NULL;
	struct circ_err err;

	ck_assert_msg(overlay_open(test_dir(), size, &o, &err) == 0, "%s", err.msg);
	return o;
}

static int ov_try_open(uint64_t size, struct circ_err *err)
{
	struct overlay *o = NULL;
	int rc = overlay_open(test_dir(), size, &o, err);

	if (rc == 0)
		overlay_close(o);
	else
		ck_assert_ptr_null(o);
	return rc;
}

static void write_tag(struct overlay *o, uint64_t s, uint64_t tag)
{
	uint8_t buf[SECTOR];

	fill_sector(buf, tag);
	ck_assert_int_eq(overlay_write_sector(o, s, buf), 0);
}

/*
 * Asserts what sector s holds: 0 the base, TAG_ZERO zeros, else data with that
 * tag. Called for millions of sectors, it asserts only on failure: every
 * passing ck_assert costs Check a write to its parent.
 */
static void expect(struct overlay *o, uint64_t s, uint64_t tag)
{
	static const char *const names[] = { "base", "zero", "data" };
	enum overlay_state st, want;
	uint8_t buf[SECTOR];
	bool data = tag != 0 && tag != TAG_ZERO;
	int rc;

	/* Only data is read: other sectors are asked for their state alone. */
	if (data)
		memset(buf, 0, sizeof(buf));
	rc = overlay_read_sector(o, s, data ? buf : NULL, &st);
	if (rc)
		ck_abort_msg("sector %llu: read error %d", (unsigned long long)s, rc);
	want = tag == 0 ? OVERLAY_BASE : tag == TAG_ZERO ? OVERLAY_ZERO : OVERLAY_DATA;
	if (st != want)
		ck_abort_msg("sector %llu reads %s, want %s", (unsigned long long)s, names[st],
		             names[want]);
	if (data && sector_tag(buf) != tag)
		ck_abort_msg("sector %llu: wrong bytes (tag %llu, want %llu)",
		             (unsigned long long)s, (unsigned long long)sector_tag(buf),
		             (unsigned long long)tag);
}

/* Checks every sector against model, and the counters that follow from it. */
static void expect_model(struct overlay *o, const uint64_t *model, uint64_t n)
{
	uint64_t data = 0, changed = 0;

	for (uint64_t s = 0; s < n; s++) {
		expect(o, s, model[s]);
		changed += model[s] != 0;
		data += model[s] != 0 && model[s] != TAG_ZERO;
	}
	ck_assert_uint_eq(overlay_changed_sectors(o), changed);
	ck_assert_uint_eq(overlay_bytes(o), data * SECTOR);
}

static off_t file_size(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	test_path(path, name);
	if (stat(path, &st))
		return -1;
	return st.st_size;
}

static void copy_file(const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct buf data = { 0 };

	test_path(a, from);
	test_path(b, to);
	read_file(a, &data);
	write_file(b, data.data, data.len);
	buf_free(&data);
}

static void truncate_file(const char *name, off_t len)
{
	char path[PATH_MAX];

	test_path(path, name);
	ck_assert_int_eq(truncate(path, len), 0);
}

static void append_file(const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	test_path(path, name);
	f = fopen(path, "ae");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void flip_byte(const char *name, off_t at)
{
	char path[PATH_MAX];
	struct buf b = { 0 };

	test_path(path, name);
	read_file(path, &b);
	ck_assert_uint_gt(b.len, (size_t)at);
	b.data[at] ^= 0x20;
	write_file(path, b.data, b.len);
	buf_free(&b);
}

START_TEST(test_fresh_overlay)
{
	/* A size that is not a whole number of sectors: the last one is short. */
	struct overlay *o = ov_open(DISK + 100);
	enum overlay_state st;
	uint8_t buf[SECTOR];
	struct circ_err err;
	char path[PATH_MAX];

	for (uint64_t s = 0; s <= NSECT; s++)
		expect(o, s, 0);
	ck_assert_uint_eq(overlay_bytes(o), 0);
	ck_assert_uint_eq(overlay_changed_sectors(o), 0);
	fill_sector(buf, 1);
	ck_assert_int_eq(overlay_read_sector(o, NSECT + 1, buf, &st), -EINVAL);
	ck_assert_int_eq(overlay_write_sector(o, NSECT + 1, buf), -EINVAL);
	ck_assert_int_eq(overlay_zero_sector(o, NSECT + 1), -EINVAL);
	ck_assert_int_eq(overlay_read_sector(o, UINT64_MAX, buf, &st), -EINVAL);
	ck_assert_int_eq(overlay_write_sector(o, NSECT, buf), 0);
	expect(o, NSECT, 1);
	ck_assert_int_eq(file_size("overlay.log"), 0);
	ck_assert_int_eq(file_size("overlay.map"), -1); /* no checkpoint yet */
	overlay_close(o);
	overlay_close(NULL);

	test_path(path, "no-such-dir");
	ck_assert_int_eq(overlay_open(path, DISK, &o, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, path);
}
END_TEST

START_TEST(test_write_read_states)
{
	struct overlay *o = ov_open(DISK);
	enum overlay_state st;

	write_tag(o, 3, 3);
	expect(o, 3, 3);
	ck_assert_int_eq(overlay_read_sector(o, 3, NULL, &st), 0);
	ck_assert_int_eq(st, OVERLAY_DATA);
	ck_assert_uint_eq(overlay_bytes(o), SECTOR);
	ck_assert_uint_eq(overlay_changed_sectors(o), 1);
	write_tag(o, 3, 33);
	expect(o, 3, 33);
	ck_assert_uint_eq(overlay_bytes(o), SECTOR);

	ck_assert_int_eq(overlay_zero_sector(o, 5), 0);
	expect(o, 5, TAG_ZERO);
	ck_assert_int_eq(overlay_read_sector(o, 5, NULL, &st), 0);
	ck_assert_int_eq(st, OVERLAY_ZERO);
	ck_assert_uint_eq(overlay_changed_sectors(o), 2);
	ck_assert_uint_eq(overlay_bytes(o), SECTOR);

	ck_assert_int_eq(overlay_zero_sector(o, 3), 0);
	expect(o, 3, TAG_ZERO);
	ck_assert_uint_eq(overlay_bytes(o), 0);
	ck_assert_uint_eq(overlay_changed_sectors(o), 2);
	ck_assert_int_eq(overlay_zero_sector(o, 3), 0);
	ck_assert_uint_eq(overlay_changed_sectors(o), 2);

	write_tag(o, 5, 5);
	expect(o, 5, 5);
	expect(o, 4, 0);
	expect(o, 6, 0);
	ck_assert_uint_eq(overlay_bytes(o), SECTOR);
	ck_assert_uint_eq(overlay_changed_sectors(o), 2);
	overlay_close(o);
}
END_TEST

START_TEST(test_reopen_after_flush)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);
	off_t log;

	for (uint64_t s = 0; s < 10; s++) {
		write_tag(o, s, 100 + s);
		model[s] = 100 + s;
	}
	for (uint64_t s = 10; s < 15; s++) {
		ck_assert_int_eq(overlay_zero_sector(o, s), 0);
		model[s] = TAG_ZERO;
	}
	write_tag(o, 2, 202);
	model[2] = 202;
	ck_assert_int_eq(overlay_zero_sector(o, 4), 0);
	model[4] = TAG_ZERO;
	write_tag(o, NSECT - 1, 999);
	model[NSECT - 1] = 999;
	ck_assert_int_eq(overlay_flush(o), 0);
	expect_model(o, model, NSECT);
	overlay_close(o);

	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	/* A second session on top of the first. */
	write_tag(o, 4, 404);
	model[4] = 404;
	write_tag(o, 10, 1010);
	model[10] = 1010;
	ck_assert_int_eq(overlay_zero_sector(o, 0), 0);
	model[0] = TAG_ZERO;
	for (uint64_t s = 20; s < 30; s++) {
		write_tag(o, s, 2000 + s);
		model[s] = 2000 + s;
	}
	ck_assert_int_eq(overlay_flush(o), 0);
	/* A flush with nothing to do writes nothing. */
	log = file_size("overlay.log");
	ck_assert_int_eq(overlay_flush(o), 0);
	ck_assert_int_eq(file_size("overlay.log"), log);
	overlay_close(o);

	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

/* overlay_close does not flush: closing without one is what a crash leaves. */
START_TEST(test_crash_loses_only_unflushed)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);

	write_tag(o, 1, 11);
	write_tag(o, 7, 77);
	ck_assert_int_eq(overlay_zero_sector(o, 2), 0);
	ck_assert_int_eq(overlay_flush(o), 0);
	model[1] = 11;
	model[7] = 77;
	model[2] = TAG_ZERO;

	write_tag(o, 3, 33);                            /* new */
	write_tag(o, 1, 111);                           /* overwrite of a flushed sector */
	write_tag(o, 2, 22);                            /* over a flushed discard */
	ck_assert_int_eq(overlay_zero_sector(o, 4), 0); /* discard of base */
	ck_assert_int_eq(overlay_zero_sector(o, 7), 0); /* discard of flushed data */
	overlay_close(o);

	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	/* New writes after the crash never land on what the durable map names. */
	for (uint64_t s = 30; s < 40; s++) {
		write_tag(o, s, 3000 + s);
		model[s] = 3000 + s;
	}
	expect_model(o, model, NSECT);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

enum tear {
	CUT_ONE,
	CUT_FIVE,
	CUT_BODY,   /* only the last batch's header is left */
	CUT_HEADER, /* part of the last batch's header is left */
	FLIP_BODY,
	FLIP_HEADER,
	GARBAGE,
	ZEROS,
	OLD_BATCH, /* an earlier batch repeated at the end */
	TEAR_KINDS,
};

/* Three flushed batches, then the log's tail damaged as a crash or a bad disk would. */
START_TEST(test_torn_log_tail)
{
	enum tear how = (enum tear)_i;
	uint64_t model[NSECT] = { 0 };
	uint8_t junk[100];
	off_t len[4], want_len;
	bool last_survives;
	struct overlay *o = ov_open(DISK);
	struct buf log = { 0 };
	char path[PATH_MAX];

	len[0] = file_size("overlay.log");
	for (int b = 1; b <= 3; b++) {
		for (uint64_t s = 0; s < (uint64_t)b + 1; s++)
			write_tag(o, 10 * (uint64_t)b + s, 100 * (uint64_t)b + s);
		ck_assert_int_eq(overlay_flush(o), 0);
		len[b] = file_size("overlay.log");
		ck_assert_int_gt(len[b], len[b - 1]);
	}
	overlay_close(o);

	last_survives = how == GARBAGE || how == ZEROS || how == OLD_BATCH;
	want_len = last_survives ? len[3] : len[2];
	switch (how) {
	case CUT_ONE:
		truncate_file("overlay.log", len[3] - 1);
		break;
	case CUT_FIVE:
		truncate_file("overlay.log", len[3] - 5);
		break;
	case CUT_BODY:
		truncate_file("overlay.log", len[2] + 48);
		break;
	case CUT_HEADER:
		truncate_file("overlay.log", len[2] + 20);
		break;
	case FLIP_BODY:
		flip_byte("overlay.log", len[3] - 3);
		break;
	case FLIP_HEADER:
		flip_byte("overlay.log", len[2] + 6);
		break;
	case GARBAGE:
		fill_random(junk, sizeof(junk), 9);
		append_file("overlay.log", junk, sizeof(junk));
		break;
	case ZEROS:
		memset(junk, 0, sizeof(junk));
		append_file("overlay.log", junk, sizeof(junk));
		break;
	case OLD_BATCH:
		test_path(path, "overlay.log");
		read_file(path, &log);
		append_file("overlay.log", log.data + len[1], (size_t)(len[2] - len[1]));
		want_len = len[3] + (len[2] - len[1]);
		buf_free(&log);
		break;
	case TEAR_KINDS:
		break;
	}

	for (int b = 1; b <= (last_survives ? 3 : 2); b++)
		for (uint64_t s = 0; s < (uint64_t)b + 1; s++)
			model[10 * b + s] = 100 * (uint64_t)b + s;
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	/* The damage is cut off, so that later batches follow good ones. */
	ck_assert_int_eq(file_size("overlay.log"), want_len);

	/* The log goes on after recovery. */
	write_tag(o, 50, 5050);
	write_tag(o, 31, 3131);
	model[50] = 5050;
	model[31] = 3131;
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

/* A damaged batch in the middle: the batches before it survive. */
START_TEST(test_damaged_middle_batch)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);
	off_t len1;

	write_tag(o, 1, 1);
	ck_assert_int_eq(overlay_flush(o), 0);
	len1 = file_size("overlay.log");
	write_tag(o, 2, 2);
	ck_assert_int_eq(overlay_flush(o), 0);
	write_tag(o, 3, 3);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	flip_byte("overlay.log", len1 + 50);
	model[1] = 1;
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	ck_assert_int_eq(file_size("overlay.log"), len1);
	overlay_close(o);
}
END_TEST

enum map_damage {
	MAP_FLIP_MAGIC,
	MAP_FLIP_SIZE,
	MAP_FLIP_SEQ,
	MAP_FLIP_DIGEST,
	MAP_FLIP_BODY,
	MAP_CUT_ONE,
	MAP_CUT_HEADER,
	MAP_EMPTY,
	MAP_LONGER_SIZE, /* a good map, opened for a disk one sector longer */
	MAP_DAMAGE_KINDS,
};

/* A checkpoint that fails its checks is refused with an error, never half-used. */
START_TEST(test_damaged_map_refused)
{
	enum map_damage how = (enum map_damage)_i;
	struct overlay *o = ov_open(DISK);
	struct circ_err err;
	off_t map_len;

	write_tag(o, 1, 1);
	ck_assert_int_eq(overlay_reset(o), 0); /* writes a checkpoint */
	write_tag(o, 2, 2);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	map_len = file_size("overlay.map");
	ck_assert_int_eq(map_len, 64 + 4 * NSECT);
	copy_file("overlay.map", "map.good");

	switch (how) {
	case MAP_FLIP_MAGIC:
		flip_byte("overlay.map", 3);
		break;
	case MAP_FLIP_SIZE:
		flip_byte("overlay.map", 8);
		break;
	case MAP_FLIP_SEQ:
		flip_byte("overlay.map", 16);
		break;
	case MAP_FLIP_DIGEST:
		flip_byte("overlay.map", 40);
		break;
	case MAP_FLIP_BODY:
		flip_byte("overlay.map", map_len - 1);
		break;
	case MAP_CUT_ONE:
		truncate_file("overlay.map", map_len - 1);
		break;
	case MAP_CUT_HEADER:
		truncate_file("overlay.map", 30);
		break;
	case MAP_EMPTY:
		truncate_file("overlay.map", 0);
		break;
	case MAP_LONGER_SIZE: /* opened below as a disk one sector longer */
		break;
	case MAP_DAMAGE_KINDS:
		break;
	}
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(ov_try_open(how == MAP_LONGER_SIZE ? DISK + SECTOR : DISK, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_err_has(&err, "overlay.map");
	ck_assert_err_has(&err, test_dir());
	/* The refusal changed nothing: with the good map back, everything is there. */
	copy_file("map.good", "overlay.map");
	o = ov_open(DISK);
	expect(o, 1, 0);
	expect(o, 2, 2);
	overlay_close(o);
}
END_TEST

/* A checkpoint made for one disk size is refused for another. */
START_TEST(test_map_for_other_size)
{
	struct overlay *o = ov_open(DISK);
	struct circ_err err;

	write_tag(o, 1, 1);
	ck_assert_int_eq(overlay_reset(o), 0);
	write_tag(o, NSECT - 1, 9);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	ck_assert_int_eq(ov_try_open(DISK + SECTOR, &err), -1);
	ck_assert_err_has(&err, "size");
	ck_assert_int_eq(ov_try_open(DISK - SECTOR, &err), -1);
	ck_assert_err_has(&err, "size");
	ck_assert_int_eq(ov_try_open(2 * DISK, &err), -1);
	/* Bytes that round up to the same number of sectors are the same disk. */
	o = ov_open(DISK - 100);
	expect(o, NSECT - 1, 9);
	overlay_close(o);
}
END_TEST

/*
 * A write never lands in a slot that the durable map names: with the map and
 * log as they were at the last flush and the data file as it is now, every
 * sector reads what was flushed.
 */
START_TEST(test_no_overwrite_of_durable_slots)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);

	write_tag(o, 0, 1);
	write_tag(o, 1, 2);
	write_tag(o, 2, 3);
	ck_assert_int_eq(overlay_flush(o), 0);
	copy_file("overlay.log", "log.snap");
	model[0] = 1;
	model[1] = 2;
	model[2] = 3;

	/* Overwrites and a discard, then new writes that could reuse any free slot. */
	write_tag(o, 0, 11);
	write_tag(o, 0, 111);
	ck_assert_int_eq(overlay_zero_sector(o, 1), 0);
	for (uint64_t s = 3; s < 8; s++)
		write_tag(o, s, 10 + s);
	write_tag(o, 2, 33);
	overlay_close(o);
	copy_file("log.snap", "overlay.log");
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);

	/* Slots that the last flush stopped naming may be reused; named ones still not. */
	o = ov_open(DISK);
	write_tag(o, 0, 21);
	ck_assert_int_eq(overlay_zero_sector(o, 1), 0);
	ck_assert_int_eq(overlay_flush(o), 0);
	model[0] = 21;
	model[1] = TAG_ZERO;
	copy_file("overlay.log", "log.snap");
	for (uint64_t s = 10; s < 20; s++)
		write_tag(o, s, 100 + s);
	write_tag(o, 2, 233);
	write_tag(o, 0, 221);
	overlay_close(o);
	copy_file("log.snap", "overlay.log");
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

/* The same after a checkpoint: the map file is the durable map then. */
START_TEST(test_no_overwrite_after_reset)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);

	write_tag(o, 5, 5);
	ck_assert_int_eq(overlay_flush(o), 0);
	ck_assert_int_eq(overlay_reset(o), 0);
	write_tag(o, 6, 6);
	write_tag(o, 7, 7);
	ck_assert_int_eq(overlay_flush(o), 0);
	model[6] = 6;
	model[7] = 7;
	copy_file("overlay.map", "map.snap");
	copy_file("overlay.log", "log.snap");
	write_tag(o, 6, 66);
	ck_assert_int_eq(overlay_zero_sector(o, 7), 0);
	write_tag(o, 8, 8);
	write_tag(o, 9, 9);
	overlay_close(o);
	copy_file("map.snap", "overlay.map");
	copy_file("log.snap", "overlay.log");
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

/* Whether this file system can punch holes (tmpfs and ext4 can). */
static bool can_punch(void)
{
	static uint8_t data[2 * SECTOR];
	char path[PATH_MAX];
	bool ok;
	int fd;

	test_path(path, "punch-probe");
	write_file(path, data, sizeof(data));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ok = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, SECTOR) == 0;
	close(fd);
	unlink(path);
	return ok;
}

static blkcnt_t data_blocks(void)
{
	char path[PATH_MAX];
	struct stat st;

	test_path(path, "overlay.data");
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_blocks;
}

START_TEST(test_discard_frees_space)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);
	blkcnt_t before;
	off_t size;

	for (uint64_t s = 0; s < 32; s++) {
		write_tag(o, s, 1 + s);
		model[s] = 1 + s;
	}
	ck_assert_int_eq(overlay_flush(o), 0);
	ck_assert_uint_eq(overlay_bytes(o), 32 * SECTOR);
	size = file_size("overlay.data");
	ck_assert_int_eq(size, 32 * SECTOR);
	before = data_blocks();

	/* Sixteen slots in a row, so that the file's extent map stays small. */
	for (uint64_t s = 8; s < 24; s++) {
		ck_assert_int_eq(overlay_zero_sector(o, s), 0);
		model[s] = TAG_ZERO;
	}
	ck_assert_uint_eq(overlay_bytes(o), 16 * SECTOR);
	/* Not punched before the flush: the durable map still names those slots. */
	ck_assert_int_eq(data_blocks(), before);
	ck_assert_int_eq(overlay_flush(o), 0);
	/* Allow for one block of file system metadata. */
	if (can_punch())
		ck_assert_int_le(data_blocks(), before - 15 * (SECTOR / 512));
	ck_assert_int_eq(file_size("overlay.data"), size);
	expect_model(o, model, NSECT);

	/* Freed slots are reused: sixteen new sectors do not grow the file. */
	for (uint64_t s = 40; s < 56; s++) {
		write_tag(o, s, 40 + s);
		model[s] = 40 + s;
	}
	ck_assert_int_eq(file_size("overlay.data"), size);
	ck_assert_uint_eq(overlay_bytes(o), 32 * SECTOR);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	overlay_close(o);
}
END_TEST

/* Overwritten slots are freed by the next flush: rewriting a sector does not grow the file. */
START_TEST(test_overwrite_reuses_space)
{
	struct overlay *o = ov_open(DISK);

	for (uint64_t v = 1; v <= 50; v++) {
		write_tag(o, 9, v);
		ck_assert_int_eq(overlay_flush(o), 0);
	}
	ck_assert_int_le(file_size("overlay.data"), 2 * SECTOR);
	ck_assert_uint_eq(overlay_bytes(o), SECTOR);
	expect(o, 9, 50);
	overlay_close(o);
	o = ov_open(DISK);
	expect(o, 9, 50);
	overlay_close(o);
}
END_TEST

/*
 * When the log passes its limit the whole map is checkpointed and the log
 * starts over. Batches of many discarded sectors fill the log fast without
 * writing data; a few data sectors ride along in every batch.
 */
#define CK_BATCH   (128u << 10) /* sectors discarded per flush: a batch of 1 MiB */
#define CK_BATCHES 10u
#define CK_DATA    64u /* data sectors after the discarded ranges */
#define CK_NSECT   ((uint64_t)CK_BATCHES * CK_BATCH + CK_DATA)

static void ck_write_round(struct overlay *o, uint64_t *model, unsigned b)
{
	for (uint64_t s = (uint64_t)b * CK_BATCH; s < (uint64_t)(b + 1) * CK_BATCH; s++) {
		if (overlay_zero_sector(o, s))
			ck_abort_msg("discarding sector %llu failed", (unsigned long long)s);
		model[s] = TAG_ZERO;
	}
	/* Eight data sectors a round, overwriting earlier rounds' ones. */
	for (uint64_t k = 0; k < 8; k++) {
		uint64_t s = CK_BATCHES * (uint64_t)CK_BATCH + (b * 5 + k * 7) % CK_DATA;

		write_tag(o, s, 1000 * (b + 1) + k);
		model[s] = 1000 * (b + 1) + k;
	}
}

START_TEST(test_checkpoint)
{
	uint64_t *model = calloc(CK_NSECT, sizeof(*model));
	struct overlay *o = ov_open(CK_NSECT * SECTOR);
	off_t prev = 0, now;
	unsigned b, checkpointed_at = 0;

	ck_assert_ptr_nonnull(model);
	for (b = 0; b < CK_BATCHES - 2 && !checkpointed_at; b++) {
		ck_write_round(o, model, b);
		ck_assert_int_eq(overlay_flush(o), 0);
		now = file_size("overlay.log");
		if (now < prev)
			checkpointed_at = b;
		prev = now;
	}
	/* Seven batches of 1 MiB and a bit stay under 8 MiB; the eighth passes it. */
	ck_assert_msg(checkpointed_at == 7, "checkpointed at batch %u", checkpointed_at);
	ck_assert_int_eq(file_size("overlay.log"), 0);
	ck_assert_int_eq(file_size("overlay.map"), 64 + 4 * (off_t)CK_NSECT);

	/* Two more batches in the new log, then unflushed changes lost to a crash. */
	for (; b < CK_BATCHES; b++) {
		ck_write_round(o, model, b);
		ck_assert_int_eq(overlay_flush(o), 0);
	}
	ck_assert_int_gt(file_size("overlay.log"), 0);
	write_tag(o, CK_NSECT - 1, 424242);
	ck_assert_int_eq(overlay_zero_sector(o, CK_NSECT - 2), 0);
	ck_assert_int_eq(overlay_zero_sector(o, 0), 0);
	write_tag(o, 1, 4242);
	overlay_close(o);

	o = ov_open(CK_NSECT * SECTOR);
	expect_model(o, model, CK_NSECT);
	/* And the recovered overlay carries on: write, flush, reopen. */
	write_tag(o, 5, 555);
	model[5] = 555;
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(CK_NSECT * SECTOR);
	expect(o, 5, 555);
	for (uint64_t s = CK_NSECT - CK_DATA; s < CK_NSECT; s++)
		expect(o, s, model[s]);
	overlay_close(o);
	free(model);
}
END_TEST

START_TEST(test_reset)
{
	uint64_t model[NSECT] = { 0 };
	struct overlay *o = ov_open(DISK);

	for (uint64_t s = 0; s < 10; s++)
		write_tag(o, s, 1 + s);
	ck_assert_int_eq(overlay_zero_sector(o, 20), 0);
	ck_assert_int_eq(overlay_flush(o), 0);
	write_tag(o, 30, 30); /* unflushed: dropped too */
	ck_assert_int_eq(overlay_reset(o), 0);
	expect_model(o, model, NSECT);
	ck_assert_int_eq(file_size("overlay.data"), 0);
	ck_assert_int_eq(file_size("overlay.log"), 0);
	/* Durable on return: no flush before the "crash". */
	overlay_close(o);
	o = ov_open(DISK);
	expect_model(o, model, NSECT);

	/* Writing after a reset works as on a new overlay. */
	write_tag(o, 3, 333);
	model[3] = 333;
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect_model(o, model, NSECT);
	ck_assert_int_eq(overlay_reset(o), 0);
	ck_assert_int_eq(overlay_reset(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect(o, 3, 0);
	overlay_close(o);
}
END_TEST

/* --- threads: writers, readers and a flusher on one overlay --- */

#define T_WRITERS 4
#define T_PER     16 /* sectors per writer */
#define T_ROUNDS  200

struct t_shared {
	struct overlay *o;
	atomic_bool stop;
	atomic_uint bad_reads, errors;
	uint64_t last[T_WRITERS * T_PER];
};

struct t_arg {
	struct t_shared *sh;
	unsigned id;
};

static void *t_writer(void *p)
{
	struct t_arg *a = p;
	uint8_t buf[SECTOR];

	for (uint64_t r = 1; r <= T_ROUNDS; r++)
		for (unsigned k = 0; k < T_PER; k++) {
			uint64_t s = a->id * T_PER + k;
			uint64_t tag = (s << 32) | r;

			if ((r + k) % 7 == 0) {
				if (overlay_zero_sector(a->sh->o, s))
					atomic_fetch_add(&a->sh->errors, 1);
				a->sh->last[s] = TAG_ZERO;
				continue;
			}
			fill_sector(buf, tag);
			if (overlay_write_sector(a->sh->o, s, buf))
				atomic_fetch_add(&a->sh->errors, 1);
			a->sh->last[s] = tag;
		}
	return NULL;
}

static void *t_reader(void *p)
{
	struct t_shared *sh = p;
	uint8_t buf[SECTOR];
	uint64_t s = 0;

	while (!atomic_load(&sh->stop)) {
		enum overlay_state st;

		s = (s + 13) % (T_WRITERS * T_PER);
		if (overlay_read_sector(sh->o, s, buf, &st)) {
			atomic_fetch_add(&sh->errors, 1);
			continue;
		}
		/* Data is whole and belongs to this sector, whichever version it is. */
		if (st == OVERLAY_DATA && (sector_tag(buf) == 0 || sector_tag(buf) >> 32 != s))
			atomic_fetch_add(&sh->bad_reads, 1);
	}
	return NULL;
}

static void *t_flusher(void *p)
{
	struct t_shared *sh = p;

	while (!atomic_load(&sh->stop))
		if (overlay_flush(sh->o))
			atomic_fetch_add(&sh->errors, 1);
	return NULL;
}

START_TEST(test_threads)
{
	struct t_shared *sh = calloc(1, sizeof(*sh));
	pthread_t w[T_WRITERS], rd[2], fl;
	struct t_arg args[T_WRITERS];
	uint64_t model[NSECT] = { 0 };

	ck_assert_ptr_nonnull(sh);
	sh->o = ov_open(DISK);
	ck_assert_int_eq(pthread_create(&fl, NULL, t_flusher, sh), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&rd[i], NULL, t_reader, sh), 0);
	for (unsigned i = 0; i < T_WRITERS; i++) {
		args[i] = (struct t_arg){ sh, i };
		ck_assert_int_eq(pthread_create(&w[i], NULL, t_writer, &args[i]), 0);
	}
	for (unsigned i = 0; i < T_WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store(&sh->stop, true);
	pthread_join(fl, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_eq(atomic_load(&sh->bad_reads), 0);
	memcpy(model, sh->last, sizeof(sh->last));
	expect_model(sh->o, model, NSECT);
	ck_assert_int_eq(overlay_flush(sh->o), 0);
	overlay_close(sh->o);
	sh->o = ov_open(DISK);
	expect_model(sh->o, model, NSECT);
	overlay_close(sh->o);
	free(sh);
}
END_TEST

/* --- regressions --- */

/*
 * overlay_flush appends a batch as two write()s; when the second fails (disk
 * full, file size limit), the header stays in the log and later batches are
 * appended after it. Recovery stops at that orphan header, so batches whose
 * flush returned 0 are lost.
 */
START_TEST(test_bug_failed_flush_poisons_log)
{
	uint64_t model[NSECT * 64] = { 0 };
	struct overlay *o = ov_open(DISK * 64);
	struct rlimit old, lim;
	off_t log;
	int rc;

	write_tag(o, 0, 1);
	model[0] = 1;
	ck_assert_int_eq(overlay_flush(o), 0);
	/* Grow the log past the data file's 4 KiB with discards only. */
	for (uint64_t b = 0; b < 10; b++) {
		for (uint64_t s = 1 + b * 200; s < 1 + (b + 1) * 200; s++) {
			ck_assert_int_eq(overlay_zero_sector(o, s), 0);
			model[s] = TAG_ZERO;
		}
		ck_assert_int_eq(overlay_flush(o), 0);
	}
	log = file_size("overlay.log");
	ck_assert_int_gt(log, 2 * SECTOR);

	/* Room for the next batch's header and a few bytes of its body. */
	for (uint64_t s = 3000; s < 3010; s++) {
		ck_assert_int_eq(overlay_zero_sector(o, s), 0);
		model[s] = TAG_ZERO;
	}
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)log + 48 + 16;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = overlay_flush(o);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	ck_assert_int_ne(rc, 0); /* the premise: this flush failed */

	/* The limit is gone: these flushes succeed, so their changes must survive. */
	ck_assert_int_eq(overlay_flush(o), 0);
	write_tag(o, 0, 2);
	model[0] = 2;
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK * 64);
	expect_model(o, model, NSECT * 64);
	overlay_close(o);
}
END_TEST

/*
 * A map entry naming a slot past the data file's end is read as "base", but
 * only in memory: once a later write extends the file over that slot, a
 * reopen makes the old entry valid again and the sector reads another
 * sector's data.
 */
START_TEST(test_bug_dropped_slot_comes_back)
{
	struct overlay *o = ov_open(DISK);

	write_tag(o, 1, 11);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	truncate_file("overlay.data", 0); /* the data file lost its tail */
	o = ov_open(DISK);
	expect(o, 1, 0);
	write_tag(o, 2, 22);
	ck_assert_int_eq(overlay_flush(o), 0);
	overlay_close(o);
	o = ov_open(DISK);
	expect(o, 2, 22);
	expect(o, 1, 0); /* fails: sector 1 now reads sector 2's data */
	overlay_close(o);
}
END_TEST

Suite *overlay_suite(void)
{
	Suite *s = suite_create("overlay");
	TCase *tc = tcase_create("overlay");
	TCase *big = tcase_create("checkpoint");
	TCase *bugs = tcase_create("known-bugs");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_fresh_overlay);
	tcase_add_test(tc, test_write_read_states);
	tcase_add_test(tc, test_reopen_after_flush);
	tcase_add_test(tc, test_crash_loses_only_unflushed);
	tcase_add_loop_test(tc, test_torn_log_tail, CUT_ONE, TEAR_KINDS);
	tcase_add_test(tc, test_damaged_middle_batch);
	tcase_add_loop_test(tc, test_damaged_map_refused, MAP_FLIP_MAGIC, MAP_DAMAGE_KINDS);
	tcase_add_test(tc, test_map_for_other_size);
	tcase_add_test(tc, test_no_overwrite_of_durable_slots);
	tcase_add_test(tc, test_no_overwrite_after_reset);
	tcase_add_test(tc, test_discard_frees_space);
	tcase_add_test(tc, test_overwrite_reuses_space);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);

	tcase_add_scratch(big);
	tcase_set_timeout(big, 120);
	tcase_add_test(big, test_checkpoint);
	suite_add_tcase(s, big);

	/* Regressions: bugs these tests found once. */
	tcase_add_scratch(bugs);
	tcase_add_test(bugs, test_bug_failed_flush_poisons_log);
	tcase_add_test(bugs, test_bug_dropped_slot_comes_back);
	suite_add_tcase(s, bugs);
	return s;
}
