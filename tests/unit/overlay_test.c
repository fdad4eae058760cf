/* SPDX-License-Identifier: MIT */
/*
 * The overlay's basics and its crash recovery: what a reopen finds after
 * flushes, crashes, torn or damaged logs and damaged checkpoints, and the
 * recovery bugs these tests once found. Space reuse, checkpoints, reset
 * and threads are tested in overlay_checkpoint_test.c.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "tests/unit/overlay_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

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
	TCase *bugs = tcase_create("regressions");

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
	suite_add_tcase(s, tc);

	/* Regressions: bugs these tests found once. */
	tcase_add_scratch(bugs);
	tcase_add_test(bugs, test_bug_failed_flush_poisons_log);
	tcase_add_test(bugs, test_bug_dropped_slot_comes_back);
	suite_add_tcase(s, bugs);
	return s;
}
