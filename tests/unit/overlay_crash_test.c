/* SPDX-License-Identifier: MIT */
/*
 * Power cuts of the overlay. It runs a concurrent workload (two writers, a
 * flusher, checkpoints every few flushes) through a crashfs (crashfs.h says
 * what a crash image may hold). The overlay recovers each image and must
 * show, for every sector:
 * what the last successful flush covered, or something written after it,
 * whole, never torn, never another sector's or a stale slot's bytes.
 * CIRC_CRASH_IMAGES sets how many images (default 1000; `make stress` more).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "tests/unit/crashfs.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define NSECT        48  /* overlay sectors (4 KiB) of the test disk */
#define WRITES       160 /* per writer */
#define DEV_SECTOR   512 /* a device sector: each 512 bytes of a pattern name it */
#define CHECKPOINT_B 200 /* a checkpoint every few flushes */

/* --- the workload ------------------------------------------------------------------ */

struct write_rec {
	uint32_t sector, version;
	bool discard;      /* overlay_zero_sector, not a write */
	size_t start, end; /* the record's length before and after */
};

struct flush_rec {
	size_t start, end;
	int rc;
};

struct workload {
	struct overlay *o;
	struct crashfs *rec;
	struct write_rec writes[4 * WRITES];
	atomic_size_t n_writes;
	struct flush_rec flushes[4096];
	atomic_size_t n_flushes;
	atomic_bool done;
};

/* Sector s's bytes at version v: every 512-byte piece names both, so that a tear shows. */
static void pattern(uint32_t s, uint32_t v, uint8_t out[OVERLAY_SECTOR])
{
	for (size_t i = 0; i < OVERLAY_SECTOR; i += DEV_SECTOR) {
		uint32_t words[4] = { 0x43524153u, s, v, (uint32_t)(i / DEV_SECTOR) };

		memcpy(out + i, words, sizeof(words));
		fill_random(out + i + sizeof(words), DEV_SECTOR - sizeof(words),
		            (uint64_t)s << 40 | (uint64_t)v << 8 | i / DEV_SECTOR);
	}
}

struct writer_arg {
	struct workload *w;
	uint32_t first; /* this writer owns sectors first, first + 2, ... */
	uint64_t seed;
};

/* One flush, recorded; false when the record is full. */
static bool flush_once(struct workload *w)
{
	size_t i = atomic_fetch_add(&w->n_flushes, 1);
	struct flush_rec *f;

	if (i >= 4096) {
		atomic_fetch_sub(&w->n_flushes, 1);
		return false;
	}
	f = &w->flushes[i];
	/* Not yet done: a failed flush promises nothing, and this one is in flight. */
	f->rc = -1;
	f->start = crashfs_now(w->rec);
	f->rc = overlay_flush(w->o);
	f->end = crashfs_now(w->rec);
	return true;
}

/* Records an operation on sector s about to happen; returns its slot. */
static size_t note_begin(struct workload *w, uint32_t s, uint32_t v, bool discard)
{
	size_t slot = atomic_fetch_add(&w->n_writes, 1);

	w->writes[slot].sector = s;
	w->writes[slot].version = v;
	w->writes[slot].discard = discard;
	w->writes[slot].start = crashfs_now(w->rec);
	return slot;
}

/*
 * Writes, two-sector writes committed as one (as vdisk_write commits a
 * request) and discards, on the writer's own sectors.
 */
static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint32_t versions[NSECT] = { 0 };
	uint8_t buf[2][OVERLAY_SECTOR];
	uint64_t x = a->seed;

	for (int i = 0; i < WRITES; i++) {
		uint32_t s, kind;
		size_t n0, n1;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		s = a->first + 2 * (uint32_t)((x >> 33) % (NSECT / 2));
		kind = (uint32_t)(x >> 20) % 8;
		if (kind == 0) {
			n0 = note_begin(a->w, s, ++versions[s], true);
			ck_assert_int_eq(overlay_zero_sector(a->w->o, s), 0);
			a->w->writes[n0].end = crashfs_now(a->w->rec);
		} else if (kind == 1 && s + 2 < NSECT) {
			uint64_t sectors[2] = { s, s + 2 };
			uint32_t slots[2];

			pattern(s, ++versions[s], buf[0]);
			pattern(s + 2, ++versions[s + 2], buf[1]);
			n0 = note_begin(a->w, s, versions[s], false);
			n1 = note_begin(a->w, s + 2, versions[s + 2], false);
			ck_assert_int_eq(overlay_stage(a->w->o, buf[0], &slots[0]), 0);
			ck_assert_int_eq(overlay_stage(a->w->o, buf[1], &slots[1]), 0);
			ck_assert_int_eq(overlay_commit(a->w->o, sectors, slots, 2), 0);
			a->w->writes[n0].end = a->w->writes[n1].end = crashfs_now(a->w->rec);
		} else {
			pattern(s, ++versions[s], buf[0]);
			n0 = note_begin(a->w, s, versions[s], false);
			ck_assert_int_eq(overlay_write_sector(a->w->o, s, buf[0]), 0);
			a->w->writes[n0].end = crashfs_now(a->w->rec);
		}
		/* Writers flush too, now and then: flushes, and so checkpoints, keep pace. */
		if (kind == 2)
			flush_once(a->w);
	}
	return NULL;
}

static void *flusher(void *p)
{
	struct workload *w = p;

	while (!atomic_load(&w->done) && flush_once(w))
		;
	return NULL;
}

/* Whether sector s reads right after a crash at k: the last flush's, or a later write, whole. */
static void check_sector(const struct workload *w, size_t k, uint32_t s, enum overlay_state st,
                         const uint8_t *got, size_t image)
{
	static uint8_t want[OVERLAY_SECTOR];
	size_t acked_flush = 0;
	uint32_t acked = 0, v = 0;
	bool found = false;

	for (size_t i = 0; i < w->n_flushes; i++)
		if (w->flushes[i].rc == 0 && w->flushes[i].end <= k &&
		    w->flushes[i].start >= acked_flush)
			acked_flush = w->flushes[i].start;
	for (size_t i = 0; i < w->n_writes; i++)
		if (w->writes[i].sector == s && w->writes[i].end <= acked_flush &&
		    w->writes[i].version > acked)
			acked = w->writes[i].version;
	if (st == OVERLAY_BASE) {
		ck_assert_msg(acked == 0,
		              "image %zu (crash after op %zu): sector %u lost version %u, "
		              "flushed before",
		              image, k, s, acked);
		return;
	}
	if (st == OVERLAY_DATA)
		memcpy(&v, got + 8, 4);
	/* A discard is a version too: ZERO must be one at least as new as the flush's. */
	for (size_t i = 0; i < w->n_writes && !found; i++) {
		const struct write_rec *r = &w->writes[i];

		found = r->sector == s && r->discard == (st == OVERLAY_ZERO) &&
		        (st == OVERLAY_ZERO || r->version == v) &&
		        (r->version == acked || (r->version > acked && r->start < k));
	}
	ck_assert_msg(found,
	              "image %zu (crash after op %zu): sector %u reads %s version %u (sector "
	              "%u's bytes?); the flush covered version %u",
	              image, k, s, st == OVERLAY_ZERO ? "a discard, not" : "", v,
	              st == OVERLAY_DATA ? *(const uint32_t *)(got + 4) : s, acked);
	if (st == OVERLAY_ZERO)
		return;
	pattern(s, v, want);
	ck_assert_msg(memcmp(got, want, OVERLAY_SECTOR) == 0,
	              "image %zu (crash after op %zu): sector %u version %u is torn or foreign",
	              image, k, s, v);
}

START_TEST(test_power_cuts)
{
	static struct workload w;
	struct writer_arg args[2];
	size_t images = crashfs_images();
	char live[PATH_MAX], scratch[PATH_MAX];
	pthread_t tw[2], tf;
	struct circ_err err;
	struct crashfs *rec;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t first, last;

	memset(&w, 0, sizeof(w));
	test_path(live, "live");
	make_dirs(live);
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	ck_assert_msg(overlay_open_io(live, NSECT * OVERLAY_SECTOR, crashfs_io(rec), CHECKPOINT_B,
	                              &w.o, &err) == 0,
	              "%s", err.msg);
	w.rec = rec;
	for (int i = 0; i < 2; i++) {
		args[i] =
		    (struct writer_arg){ .w = &w, .first = (uint32_t)i, .seed = 7 + (uint64_t)i };
		ck_assert_int_eq(pthread_create(&tw[i], NULL, writer, &args[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&tf, NULL, flusher, &w), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(tw[i], NULL);
	atomic_store(&w.done, true);
	pthread_join(tf, NULL);
	/* A last flush after every write, so that the workload's end is promised too. */
	ck_assert(flush_once(&w));
	ck_assert_int_eq(w.flushes[w.n_flushes - 1].rc, 0);
	overlay_close(w.o);
	/* The images must cover checkpoints (a map file each) as well as the log. */
	ck_assert_uint_gt(crashfs_files_created(rec), 3);
	last = crashfs_now(rec);

	test_path(scratch, "crash");
	for (size_t image = 0; image < images; image++) {
		struct overlay *o;
		size_t k;

		k = first + crashfs_draw(&x) % (last - first + 1);
		rm_rf(scratch);
		make_dirs(scratch);
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		ck_assert_msg(overlay_open(scratch, NSECT * OVERLAY_SECTOR, &o, &err) == 0,
		              "image %zu (crash after op %zu of %zu): recovery failed: %s", image,
		              k, last, err.msg);
		for (uint32_t s = 0; s < NSECT; s++) {
			uint8_t got[OVERLAY_SECTOR];
			enum overlay_state st;

			ck_assert_int_eq(overlay_read_sector(o, s, got, &st), 0);
			check_sector(&w, k, s, st, got, image);
		}
		overlay_close(o);
	}
	crashfs_free(rec);
}
END_TEST

Suite *overlay_crash_suite(void)
{
	Suite *s = suite_create("overlay_crash");
	TCase *tc = tcase_create("power cuts");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
