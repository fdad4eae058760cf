/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "tests/unit/cache_fixture.h"
#include "tests/unit/packfile.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Where block id's record lies in the test's cache; false if it has none. */
static bool record_of(const struct block_id *id, struct pack_record *r)
{
	char dir[PATH_MAX];

	cache_dir(dir);
	return pack_record_find(dir, id, r);
}

static bool entry_exists(const struct block_id *id)
{
	struct pack_record r;

	return record_of(id, &r);
}

static uint64_t packs_bytes(size_t *n)
{
	char dir[PATH_MAX];

	cache_dir(dir);
	return pack_files_bytes(dir, n);
}

/* Writes len bytes at off of file path (O_RDWR, in place). */
static void poke(const char *path, uint64_t off, const void *data, size_t len)
{
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
	close(fd);
}

START_TEST(test_put_read_range)
{
	static uint8_t data[3 * BS], back[3 * BS];
	struct cache *c = open_cache(0);
	struct cache_stats st;
	struct block_id id, other;
	struct pack_record r;
	struct buf file = { 0 };

	block_of(1, data, sizeof(data), &id);
	ck_assert(!cache_contains(c, &id));
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), 0, 10, back), -ENOENT);
	ck_assert_int_eq(cache_put(c, &id, data, sizeof(data)), 0);
	ck_assert(cache_contains(c, &id));

	/* A range anywhere in the block, including one that crosses no 4 KiB line. */
	memset(back, 0xee, sizeof(back));
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), 4000, 5000, back), 0);
	ck_assert_mem_eq(back, data + 4000, 5000);
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), 1, 1, back), 0);
	ck_assert_uint_eq(back[0], data[1]);
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), 0, sizeof(data), back), 0);
	ck_assert_mem_eq(back, data, sizeof(data));
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), sizeof(data) - 7, 7, back), 0);
	ck_assert_mem_eq(back, data + sizeof(data) - 7, 7);
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), sizeof(data), 0, back), 0);
	/* Outside the block. */
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), sizeof(data) - 7, 8, back), -EINVAL);
	ck_assert_int_eq(cache_read(c, &id, sizeof(data), sizeof(data) + 1, 0, back), -EINVAL);
	/* The record is the uncompressed block, 4 KiB-aligned in its pack. */
	ck_assert(record_of(&id, &r));
	ck_assert_uint_eq(r.len, sizeof(data));
	ck_assert_uint_eq(r.payload_off % 4096, 0);
	read_file(r.path, &file);
	ck_assert_uint_ge(file.len, r.payload_off + r.len);
	ck_assert_mem_eq(file.data + r.payload_off, data, sizeof(data));
	buf_free(&file);
	/*
	 * One ID has one size: asked for as a block of another, the record cannot
	 * be right, and is dropped rather than served.
	 */
	ck_assert_int_eq(cache_read(c, &id, BS, 0, 10, back), -ENOENT);
	ck_assert(!entry_exists(&id));
	ck_assert_int_eq(cache_put(c, &id, data, sizeof(data)), 0);

	other = id;
	other.b[31] ^= 1;
	ck_assert_int_eq(cache_read(c, &other, sizeof(data), 0, 10, back), -ENOENT);
	ck_assert(!cache_contains(c, &other));

	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.hits, 5);
	ck_assert_uint_eq(st.misses, 3);
	ck_assert_uint_eq(st.entries, 1);
	ck_assert_uint_eq(st.bytes, sizeof(data));
	ck_assert_uint_eq(st.evictions, 0);
	ck_assert_uint_eq(st.dropped, 1); /* the read as a block of another size */

	/* Putting the same block again keeps one entry. */
	ck_assert_int_eq(cache_put(c, &id, data, sizeof(data)), 0);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 1);
	ck_assert_uint_eq(st.bytes, sizeof(data));
	cache_close(c);
	cache_close(NULL);
}
END_TEST

START_TEST(test_survives_reopen)
{
	static uint8_t data[BS], back[BS];
	struct cache *c = open_cache(0);
	struct cache_stats st;
	struct block_id id;

	for (uint64_t i = 0; i < 4; i++)
		put_block(c, i);
	cache_close(c);

	c = open_cache(0);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 4);
	ck_assert_uint_eq(st.bytes, 4 * BS);
	for (uint64_t i = 0; i < 4; i++)
		ck_assert(hits(c, i));
	/* A partial read of an entry not yet verified in this process. */
	cache_close(c);
	c = open_cache(0);
	block_of(2, data, BS, &id);
	ck_assert_int_eq(cache_read(c, &id, BS, 100, 50, back), 0);
	ck_assert_mem_eq(back, data + 100, 50);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	cache_close(c);
}
END_TEST

enum damage {
	FLIP_FIRST,  /* the payload's first byte */
	FLIP_LAST,   /* its last */
	OTHER_BLOCK, /* another block's bytes in its place */
	TRUNCATE,    /* the pack cut short inside the payload */
	ZEROS,       /* the payload's last 512 bytes never written (a torn write) */
	DAMAGE_KINDS,
};

/* A record damaged on disk while no process had it open is dropped on its first read. */
static void check_damaged_entry(enum damage how)
{
	static uint8_t data[BS], other[BS], back[BS];
	struct cache *c = open_cache(4 * ONE);
	struct block_id id, other_id;
	struct cache_stats st;
	struct pack_record r;
	uint8_t zeros[512] = { 0 }, b;

	block_of(7, data, BS, &id);
	block_of(8, other, BS, &other_id);
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
	put_block(c, 9);
	cache_close(c);

	ck_assert(record_of(&id, &r));
	switch (how) {
	case FLIP_FIRST:
		b = data[0] ^ 0x40;
		poke(r.path, r.payload_off, &b, 1);
		break;
	case FLIP_LAST:
		b = data[BS - 1] ^ 0x01;
		poke(r.path, r.payload_off + BS - 1, &b, 1);
		break;
	case OTHER_BLOCK:
		poke(r.path, r.payload_off, other, BS);
		break;
	case TRUNCATE:
		ck_assert_int_eq(truncate(r.path, (off_t)(r.payload_off + BS - 3)), 0);
		break;
	case ZEROS:
		poke(r.path, r.payload_off + BS - sizeof(zeros), zeros, sizeof(zeros));
		break;
	case DAMAGE_KINDS:
		break;
	}

	c = open_cache(4 * ONE);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	/* Even a range the damage is outside of is refused: the whole record is checked. */
	ck_assert_int_eq(cache_read(c, &id, BS, 0, 16, back), -ENOENT);
	ck_assert(!cache_contains(c, &id));
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.misses, 1);
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.entries, 1);
	/* Now a plain miss; the undamaged block is still served. */
	ck_assert_int_eq(cache_read(c, &id, BS, 0, 16, back), -ENOENT);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert(hits(c, 9));
	/* Its slot was zeroed: no later process reads it again. */
	ck_assert(!entry_exists(&id));
	/* Stored again, it is served again, also by the next process. */
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
	ck_assert_int_eq(cache_read(c, &id, BS, 0, BS, back), 0);
	ck_assert_mem_eq(back, data, BS);
	cache_close(c);
	c = open_cache(4 * ONE);
	ck_assert(hits(c, 7));
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	cache_close(c);
}

START_TEST(test_damaged_entry_dropped)
{
	check_damaged_entry((enum damage)_i);
}
END_TEST

/* A slot or a pack header that is not whole (torn, or a hand's work) hides what it names. */
START_TEST(test_damaged_slot_or_header_ignored)
{
	uint8_t b = 0x5a;
	struct pack_record r, newer;
	struct stat sb;
	struct cache_stats st;
	struct block_id id;
	uint8_t data[BS];
	struct cache *c = open_cache(5 * ONE);

	for (uint64_t i = 0; i < 4; i++)
		put_block(c, i);
	cache_close(c);
	block_of(0, data, BS, &id);
	ck_assert(record_of(&id, &r));
	poke(r.path, r.slot_off + 40, &b, 1); /* its block size */
	block_of(3, data, BS, &id);
	ck_assert(record_of(&id, &newer));
	poke(newer.path, 9, &b, 1); /* its pack's version: a newer circ's pack */
	block_of(1, data, BS, &id);
	ck_assert(record_of(&id, &r));
	poke(r.path, 0, &b, 1); /* its pack's magic */
	c = open_cache(5 * ONE);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 1);
	ck_assert(!hits(c, 0));
	ck_assert(!hits(c, 1));
	ck_assert(hits(c, 2));
	ck_assert(!hits(c, 3));
	/*
	 * A pack whose header is no header is what a crash left while making it:
	 * removed by the next process making one. A newer version's is left alone.
	 */
	put_block(c, 4);
	ck_assert_int_ne(stat(r.path, &sb), 0);
	ck_assert_int_eq(stat(newer.path, &sb), 0);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	cache_close(c);
}
END_TEST

/* A torn (short) pack is a miss; once stored again the block must be served again. */
START_TEST(test_bug_short_entry_never_served)
{
	static uint8_t data[BS], back[BS];
	struct cache *c = open_cache(0);
	struct cache_stats st;
	struct pack_record r;
	struct block_id id;

	block_of(7, data, BS, &id);
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
	cache_close(c);
	ck_assert(record_of(&id, &r));
	ck_assert_int_eq(truncate(r.path, (off_t)(r.payload_off + BS / 2)), 0);
	c = open_cache(0);
	ck_assert_int_eq(cache_read(c, &id, BS, 0, BS, back), -ENOENT);
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
	ck_assert_int_eq(cache_read(c, &id, BS, 0, BS, back), 0);
	ck_assert_mem_eq(back, data, BS);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.bytes, BS);
	cache_close(c);
}
END_TEST

/*
 * A pack removed behind a process's back (by another process keeping the
 * bound) still reads right while it is open, and is let go at the next miss.
 */
START_TEST(test_entry_removed_behind)
{
	static uint8_t data[BS], back[BS];
	struct cache *c = open_cache(0);
	struct cache_stats st;
	struct pack_record r;
	struct block_id id;
	int rc;

	block_of(3, data, BS, &id);
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
	cache_close(c);
	c = open_cache(0);
	ck_assert(record_of(&id, &r));
	ck_assert_int_eq(unlink(r.path), 0);
	/* A hit until the process notices (its next miss, or a second), with the block's bytes. */
	rc = cache_read(c, &id, BS, 0, BS, back);
	ck_assert(rc == 0 || rc == -ENOENT);
	if (rc == 0)
		ck_assert_mem_eq(back, data, BS);
	ck_assert(!hits(c, 4));
	ck_assert_int_eq(cache_read(c, &id, BS, 0, BS, back), -ENOENT);
	ck_assert(!cache_contains(c, &id));
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_uint_eq(st.bytes, 0);
	cache_close(c);
}
END_TEST

START_TEST(test_lru_bound)
{
	struct cache *c = open_cache(3 * ONE);
	struct cache_stats st;
	struct block_id id;
	uint8_t data[BS];

	for (uint64_t i = 0; i < 5; i++)
		put_block(c, i);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.bytes, 3 * BS);
	ck_assert_uint_eq(st.evictions, 2);
	for (uint64_t i = 0; i < 2; i++) {
		block_of(i, data, BS, &id);
		ck_assert_msg(!entry_exists(&id), "block %d still on disk", (int)i);
		ck_assert(!hits(c, i));
	}
	/* Oldest use first: 2, 3, 4. Reading 2 makes 3 the oldest. */
	ck_assert(hits(c, 4));
	ck_assert(hits(c, 2));
	put_block(c, 5);
	ck_assert(!hits(c, 3));
	block_of(3, data, BS, &id);
	ck_assert(!entry_exists(&id));
	ck_assert(hits(c, 2));
	ck_assert(hits(c, 4));
	ck_assert(hits(c, 5));
	/* A put refreshes an entry too: now 4 is the oldest. */
	put_block(c, 2);
	put_block(c, 5);
	put_block(c, 6);
	ck_assert(!hits(c, 4));
	ck_assert(hits(c, 2));
	ck_assert(hits(c, 5));
	ck_assert(hits(c, 6));
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.bytes, 3 * BS);
	ck_assert_uint_eq(st.evictions, 4);
	cache_close(c);
}
END_TEST

/* A block larger than the whole bound is still kept: the newest entry is never evicted. */
START_TEST(test_lru_entry_larger_than_bound)
{
	static uint8_t big[4 * BS], back[4 * BS];
	struct cache *c = open_cache(2 * BS);
	struct cache_stats st;
	struct block_id id;

	put_block(c, 0);
	block_of(1, big, sizeof(big), &id);
	ck_assert_int_eq(cache_put(c, &id, big, sizeof(big)), 0);
	ck_assert_int_eq(cache_read(c, &id, sizeof(big), 0, sizeof(big), back), 0);
	ck_assert_mem_eq(back, big, sizeof(big));
	ck_assert(!hits(c, 0));
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 1);
	/* The next put evicts it. */
	put_block(c, 2);
	ck_assert(!cache_contains(c, &id));
	ck_assert(!entry_exists(&id));
	ck_assert(hits(c, 2));
	cache_close(c);
}
END_TEST

/* Sets the mtime of the pack holding id: its last use, for the next process. */
static void set_mtime(const struct block_id *id, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	struct pack_record r;

	ck_assert(record_of(id, &r));
	ck_assert_int_eq(utimensat(AT_FDCWD, r.path, ts, 0), 0);
}

START_TEST(test_lru_order_survives_reopen)
{
	/* Age rank of blocks 0..5 (0: oldest), unrelated to the order they were put. */
	static const int age[] = { 3, 0, 5, 1, 4, 2 };
	time_t now = time(NULL);
	struct cache_stats st;
	struct block_id id;
	uint8_t data[BS];
	struct cache *c = open_cache(6 * ONE);

	for (uint64_t i = 0; i < 6; i++)
		put_block(c, i);
	cache_close(c);
	for (uint64_t i = 0; i < 6; i++) {
		block_of(i, data, BS, &id);
		set_mtime(&id, now - 10000 + 100 * age[i]);
	}

	/* Room for three: the three oldest (ranks 0, 1, 2: blocks 1, 3, 5) go at once. */
	c = open_cache(3 * ONE);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.evictions, 3);
	for (uint64_t i = 0; i < 6; i++) {
		block_of(i, data, BS, &id);
		ck_assert_msg(entry_exists(&id) == (age[i] >= 3), "block %d (age rank %d)", (int)i,
		              age[i]);
	}
	/* Among the survivors (ranks 3, 4, 5: blocks 0, 4, 2) block 0 is the oldest. */
	put_block(c, 6);
	block_of(0, data, BS, &id);
	ck_assert(!entry_exists(&id));
	ck_assert(hits(c, 4));
	ck_assert(hits(c, 2));
	ck_assert(hits(c, 6));
	cache_close(c);

	/* Reading an entry whose mtime is old records the use on disk, for the next run. */
	for (uint64_t i = 2; i <= 6; i += 2) {
		block_of(i, data, BS, &id);
		set_mtime(&id, now - 5000 + (time_t)i);
	}
	c = open_cache(0);
	ck_assert(hits(c, 2));
	cache_close(c);
	c = open_cache(2 * ONE);
	ck_assert(!hits(c, 4));
	ck_assert(hits(c, 2));
	ck_assert(hits(c, 6));
	cache_close(c);
}
END_TEST

/* cache_verify counts a block only when its record checks whole; a torn one is dropped. */
START_TEST(test_verify_drops_torn)
{
	struct pack_record r;
	struct block_id id;
	uint8_t data[BS], b;
	struct cache *c = open_cache(0);

	put_block(c, 1);
	put_block(c, 2);
	cache_close(c);
	block_of(2, data, BS, &id);
	ck_assert(record_of(&id, &r));
	b = data[100] ^ 0x40; /* torn at full length */
	poke(r.path, r.payload_off + 100, &b, 1);
	c = open_cache(0);
	block_of(1, data, BS, &id);
	ck_assert_int_eq(cache_verify(c, &id, BS), 0);
	block_of(2, data, BS, &id);
	ck_assert(cache_contains(c, &id));
	ck_assert_int_eq(cache_verify(c, &id, BS), -ENOENT);
	ck_assert(!cache_contains(c, &id));
	ck_assert(!entry_exists(&id));
	cache_close(c);
}
END_TEST

START_TEST(test_open_errors)
{
	struct cache *c = NULL;
	struct circ_err err;
	char path[PATH_MAX];

	test_path(path, "no/such/parent");
	ck_assert_int_eq(cache_open(path, 0, &c, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, path);
	test_path(path, "file");
	write_file(path, "x", 1);
	ck_assert_int_eq(cache_open(path, 0, &c, &err), -1);
	ck_assert_int_eq(err.errnum, ENOTDIR);
}
END_TEST

/* --- many threads on one cache --- */

#define MT_THREADS 6
#define MT_BLOCKS  24
#define MT_ITERS   1500

struct mt_shared {
	struct cache *c;
	uint8_t blocks[MT_BLOCKS][BS];
	struct block_id ids[MT_BLOCKS];
	atomic_uint wrong, errors, hits;
};

struct mt_arg {
	struct mt_shared *sh;
	uint64_t seed;
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void *mt_worker(void *p)
{
	struct mt_arg *a = p;
	struct mt_shared *sh = a->sh;
	uint64_t x = a->seed;
	uint8_t back[BS];

	for (int n = 0; n < MT_ITERS; n++) {
		unsigned i = (unsigned)(next_rand(&x) % MT_BLOCKS);
		size_t off = (size_t)(next_rand(&x) % BS);
		size_t len = (size_t)(next_rand(&x) % (BS - off + 1));
		int rc;

		if (next_rand(&x) % 4 == 0) {
			off = 0;
			len = BS;
		}
		rc = cache_read(sh->c, &sh->ids[i], BS, off, len, back);
		if (rc == 0) {
			atomic_fetch_add(&sh->hits, 1);
			if (memcmp(back, sh->blocks[i] + off, len) != 0)
				atomic_fetch_add(&sh->wrong, 1);
		} else if (rc != -ENOENT) {
			atomic_fetch_add(&sh->errors, 1);
		} else if (cache_put(sh->c, &sh->ids[i], sh->blocks[i], BS)) {
			atomic_fetch_add(&sh->errors, 1);
		}
	}
	return NULL;
}

static void run_threads(struct mt_shared *sh, uint64_t seed)
{
	pthread_t tids[MT_THREADS];
	struct mt_arg args[MT_THREADS];

	for (int t = 0; t < MT_THREADS; t++) {
		args[t] = (struct mt_arg){ sh, seed + 7919 * (uint64_t)t };
		ck_assert_int_eq(pthread_create(&tids[t], NULL, mt_worker, &args[t]), 0);
	}
	for (int t = 0; t < MT_THREADS; t++)
		pthread_join(tids[t], NULL);
}

/*
 * Readers and writers on overlapping IDs with a bound of a few blocks, so
 * that entries are evicted, unlinked and stored again under the readers'
 * feet: a read either misses or returns the block's own bytes.
 */
START_TEST(test_threads_never_wrong_bytes)
{
	struct mt_shared *sh = calloc(1, sizeof(*sh));
	struct cache_stats st;

	ck_assert_ptr_nonnull(sh);
	for (unsigned i = 0; i < MT_BLOCKS; i++)
		block_of(i, sh->blocks[i], BS, &sh->ids[i]);
	sh->c = open_cache(4 * ONE);
	run_threads(sh, 0x1234567);
	cache_get_stats(sh->c, &st);
	ck_assert_uint_eq(atomic_load(&sh->wrong), 0);
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_gt(atomic_load(&sh->hits), 0);
	ck_assert_uint_le(st.bytes, 4 * BS);
	ck_assert_uint_eq(st.bytes, st.entries * BS);
	ck_assert_uint_le(packs_bytes(NULL), 4 * ONE);
	cache_close(sh->c);

	/* Again from a reopened cache, whose entries are verified on first read. */
	sh->c = open_cache(6 * ONE);
	run_threads(sh, 0x7654321);
	cache_get_stats(sh->c, &st);
	ck_assert_uint_eq(atomic_load(&sh->wrong), 0);
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_le(st.bytes, 6 * BS);
	cache_close(sh->c);
	/* What is left on disk is exactly what a fresh open sees, all of it valid. */
	sh->c = open_cache(0);
	cache_get_stats(sh->c, &st);
	ck_assert_uint_le(st.entries, 6);
	for (unsigned i = 0; i < MT_BLOCKS; i++)
		if (cache_contains(sh->c, &sh->ids[i]))
			ck_assert(hits(sh->c, i));
	cache_get_stats(sh->c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	cache_close(sh->c);
	free(sh);
}
END_TEST

Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	TCase *mt = tcase_create("threads");

	tcase_add_scratch(tc);
	tcase_add_test(tc, test_put_read_range);
	tcase_add_test(tc, test_survives_reopen);
	tcase_add_loop_test(tc, test_damaged_entry_dropped, FLIP_FIRST, DAMAGE_KINDS);
	tcase_add_test(tc, test_entry_removed_behind);
	tcase_add_test(tc, test_lru_bound);
	tcase_add_test(tc, test_lru_entry_larger_than_bound);
	tcase_add_test(tc, test_lru_order_survives_reopen);
	tcase_add_test(tc, test_damaged_slot_or_header_ignored);
	tcase_add_test(tc, test_verify_drops_torn);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);

	/*
	 * Regressions: an entry whose size is not the block's (torn by a crash)
	 * is dropped, and the block fetched again is served afterwards.
	 */
	tcase_add_test(tc, test_bug_short_entry_never_served);

	tcase_add_scratch(mt);
	tcase_set_timeout(mt, 60);
	tcase_add_test(mt, test_threads_never_wrong_bytes);
	suite_add_tcase(s, mt);
	return s;
}
