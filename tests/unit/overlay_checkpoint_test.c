/* SPDX-License-Identifier: MIT */
/*
 * The overlay's space and its long runs: discarded and overwritten slots
 * reused, the log checkpointed into the map when it grows past its limit,
 * reset, and writers, readers and a flusher on one overlay at once.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "tests/unit/overlay_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

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

Suite *overlay_checkpoint_suite(void)
{
	Suite *s = suite_create("overlay-checkpoint");
	TCase *tc = tcase_create("overlay");
	TCase *big = tcase_create("checkpoint");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_discard_frees_space);
	tcase_add_test(tc, test_overwrite_reuses_space);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);

	tcase_add_scratch(big);
	tcase_set_timeout(big, 120);
	tcase_add_test(big, test_checkpoint);
	suite_add_tcase(s, big);
	return s;
}
