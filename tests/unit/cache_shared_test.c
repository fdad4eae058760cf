/* SPDX-License-Identifier: MIT */
/*
 * One cache, several processes: the bound holds for all of them at once,
 * and kill -9 of any of them, in the middle of a put or a removal, never
 * makes another one (or the next) read a wrong byte.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "tests/unit/packfile.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define BS  4096u
#define ONE (2 * BS) /* a pack of one block: bounds under 64 KiB give each block its own */

struct shared {
	atomic_uint wrong, errors, hits, puts;
	atomic_uint running;
};

static void block_of(uint64_t i, uint8_t *data, struct block_id *id)
{
	fill_random(data, BS, 5000 + i);
	block_id_compute(id, data, BS);
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * A process's life on the cache: reads blocks of [first, first + n) at
 * random, checking every byte of a hit, and puts each one it misses.
 * Runs iters rounds (0: until killed).
 */
static void worker(struct shared *sh, uint64_t bound, uint64_t first, uint64_t n, unsigned iters,
                   uint64_t seed)
{
	uint8_t data[BS], back[BS];
	struct cache *c = NULL;
	struct circ_err err;
	char dir[PATH_MAX];
	uint64_t x = seed | 1;

	test_path(dir, "cache");
	if (cache_open(dir, bound, &c, &err)) {
		atomic_fetch_add(&sh->errors, 1);
		_exit(1);
	}
	atomic_fetch_add(&sh->running, 1);
	for (unsigned k = 0; iters == 0 || k < iters; k++) {
		uint64_t i = first + next_rand(&x) % n;
		struct block_id id;
		int rc;

		block_of(i, data, &id);
		rc = cache_read(c, &id, BS, 0, BS, back);
		if (rc == 0) {
			atomic_fetch_add(&sh->hits, 1);
			if (memcmp(back, data, BS))
				atomic_fetch_add(&sh->wrong, 1);
		} else if (rc != -ENOENT) {
			atomic_fetch_add(&sh->errors, 1);
		} else if (cache_put(c, &id, data, BS) == 0) {
			atomic_fetch_add(&sh->puts, 1);
		}
	}
	cache_close(c);
	_exit(0);
}

static struct shared *shared_new(void)
{
	struct shared *sh =
	    mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(sh, MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	return sh;
}

static pid_t spawn(struct shared *sh, uint64_t bound, uint64_t first, uint64_t n, unsigned iters,
                   uint64_t seed)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		worker(sh, bound, first, n, iters, seed);
	return pid;
}

/* Reads every block of [0, n) from a fresh open: each one whole or missing, never wrong. */
static unsigned check_all(uint64_t n)
{
	uint8_t data[BS], back[BS];
	struct cache_stats st;
	struct cache *c = NULL;
	struct circ_err err;
	char dir[PATH_MAX];
	unsigned found = 0;

	test_path(dir, "cache");
	ck_assert_msg(cache_open(dir, 0, &c, &err) == 0, "%s", err.msg);
	for (uint64_t i = 0; i < n; i++) {
		struct block_id id;
		int rc;

		block_of(i, data, &id);
		rc = cache_read(c, &id, BS, 0, BS, back);
		ck_assert_msg(rc == 0 || rc == -ENOENT, "block %d: %d", (int)i, rc);
		ck_assert_msg(rc || memcmp(back, data, BS) == 0, "block %d reads wrong", (int)i);
		found += rc == 0;
	}
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.dropped, 0);
	cache_close(c);
	return found;
}

/*
 * Three processes filling one cache at once, each with its own blocks: the
 * packs on disk never hold more than the bound, sampled all along (each
 * process keeping the bound for what it sees alone would hold three times
 * as much).
 */
START_TEST(test_shared_bound_three_processes)
{
	const uint64_t bound = 12 * ONE;
	struct shared *sh = shared_new();
	uint64_t most = 0, samples = 0;
	char dir[PATH_MAX];
	pid_t pids[3];
	int alive = 3;

	test_path(dir, "cache");
	for (int p = 0; p < 3; p++)
		pids[p] = spawn(sh, bound, 1000 * (uint64_t)(p + 1), 60, 400, 77 + (uint64_t)p);
	while (alive) {
		uint64_t now = pack_files_bytes(dir, NULL);
		int status;

		most = now > most ? now : most;
		samples++;
		for (int p = 0; p < 3; p++)
			if (pids[p] && waitpid(pids[p], &status, WNOHANG) == pids[p]) {
				ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				              "worker %d failed", p);
				pids[p] = 0;
				alive--;
			}
	}
	ck_assert_uint_eq(atomic_load(&sh->wrong), 0);
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_gt(atomic_load(&sh->hits), 0);
	/* Each put more blocks than the whole bound holds: removals were needed. */
	ck_assert_uint_gt(atomic_load(&sh->puts), 3 * bound / ONE);
	ck_assert_msg(most <= bound, "the packs held %ju bytes over a bound of %ju (%ju samples)",
	              (uintmax_t)most, (uintmax_t)bound, (uintmax_t)samples);
	ck_assert_uint_gt(samples, 10);
	ck_assert_uint_le(pack_files_bytes(dir, NULL), bound);
	munmap(sh, sizeof(*sh));
}
END_TEST

static unsigned kill_cycles(void)
{
	const char *v = getenv("CIRC_CACHE_KILL_CYCLES");

	return v && atoi(v) > 0 ? (unsigned)atoi(v) : 40;
}

/* Waits until n workers have opened the cache (they count themselves in). */
static void wait_running(struct shared *sh, unsigned n)
{
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 20000 && atomic_load(&sh->running) < n; i++)
		nanosleep(&ms, NULL);
	ck_assert_uint_ge(atomic_load(&sh->running), n);
}

/*
 * Three processes on one cache of a quarter of their blocks, filling and
 * removing packs all the time, one of them killed -9 at a random moment and
 * started again, over and over: no process ever reads a wrong byte, and the
 * cache they leave opens and reads right.
 */
START_TEST(test_kill9_during_fills_and_removals)
{
	const uint64_t blocks = 24, bound = 6 * ONE;
	struct shared *sh = shared_new();
	unsigned cycles = kill_cycles(), started = 3;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char dir[PATH_MAX];
	pid_t pids[3];

	test_path(dir, "cache");
	for (int p = 0; p < 3; p++)
		pids[p] = spawn(sh, bound, 0, blocks, 0, 1 + (uint64_t)p);
	for (unsigned k = 0; k < cycles; k++) {
		int p = (int)(next_rand(&x) % 3), status;
		/* 0.2 to 5 ms into its work: inside a put, a removal or a scan as often as not. */
		struct timespec at = { 0, 200000 + (long)(next_rand(&x) % 4800000) };

		wait_running(sh, started);
		nanosleep(&at, NULL);
		ck_assert_int_eq(kill(pids[p], SIGKILL), 0);
		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert(WIFSIGNALED(status));
		atomic_fetch_sub(&sh->running, 1);
		started--;
		pids[p] = spawn(sh, bound, 0, blocks, 0, next_rand(&x));
		started++;
		ck_assert_uint_eq(atomic_load(&sh->wrong), 0);
	}
	for (int p = 0; p < 3; p++) {
		kill(pids[p], SIGKILL);
		waitpid(pids[p], NULL, 0);
	}
	ck_assert_uint_eq(atomic_load(&sh->wrong), 0);
	ck_assert_uint_eq(atomic_load(&sh->errors), 0);
	ck_assert_uint_gt(atomic_load(&sh->hits), 0);
	ck_assert_uint_gt(atomic_load(&sh->puts), blocks);
	ck_assert_uint_gt(check_all(blocks), 0);
	ck_assert_uint_le(pack_files_bytes(dir, NULL), bound);
	munmap(sh, sizeof(*sh));
}
END_TEST

Suite *cache_shared_suite(void)
{
	Suite *s = suite_create("cache_shared");
	TCase *tc = tcase_create("processes");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_shared_bound_three_processes);
	tcase_add_test(tc, test_kill9_during_fills_and_removals);
	suite_add_tcase(s, tc);
	return s;
}
