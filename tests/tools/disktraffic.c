/* SPDX-License-Identifier: MIT */
/*
 * Traffic on a disk file for the kill -9 cycles, and the check after them.
 *
 *   disktraffic write FILE JOURNAL SEED   runs until killed
 *   disktraffic verify FILE JOURNAL       exit 0 if FILE keeps every promise
 *
 * Four threads each own slots of the file: even slots start on a 4 KiB
 * boundary, odd ones 1000 bytes past one (unaligned writes). A thread
 * writes a slot's next version (or, for some versions of aligned slots,
 * punches it: a discard), and every few operations calls fsync; only then
 * does it append "SLOT VERSION" of each operation to the journal (a file
 * elsewhere, synced). After a crash, each 4 KiB page of a slot must hold
 * that slot's bytes of one version at least as new as its journal's, never
 * older, another slot's or torn within the page.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS   4
#define SLOTS     64
#define SLOT_LEN  (12u << 10)
#define SLOT_SPAN (32u << 10)
#define PAGE      4096u
#define BATCH     4  /* operations per fsync */
#define MAX_AHEAD 64 /* versions a slot may have started past its journal's */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t slot_off(unsigned slot)
{
	return (uint64_t)slot * SLOT_SPAN + (slot % 2 ? 1000 : 0);
}

/* Version v of a slot is a discard: some versions of aligned slots. */
static int is_discard(unsigned slot, unsigned v)
{
	return slot % 2 == 0 && v > 0 && mix((uint64_t)slot << 32 | v) % 5 == 0;
}

/* The slot's bytes at version v (0: never written: zeros). */
static void content(unsigned slot, unsigned v, uint8_t *out)
{
	if (v == 0 || is_discard(slot, v)) {
		memset(out, 0, SLOT_LEN);
		return;
	}
	for (size_t i = 0; i < SLOT_LEN; i += 8) {
		uint64_t w = mix((uint64_t)slot << 40 | (uint64_t)v << 16 | i / 8);

		memcpy(out + i, &w, 8);
	}
}

struct writer {
	int fd, journal;
	unsigned first;
	const unsigned *start; /* each slot's version in the journal: go on from there */
	uint64_t seed;
	pthread_mutex_t *journal_lock;
};

static void *write_loop(void *p)
{
	struct writer *w = p;
	unsigned version[SLOTS], done[BATCH][2];
	static __thread uint8_t buf[SLOT_LEN];
	uint64_t x = w->seed;

	memcpy(version, w->start, sizeof(version));

	for (;;) {
		char line[BATCH * 32];
		size_t len = 0;

		for (int i = 0; i < BATCH; i++) {
			unsigned slot, v;

			x = mix(x + 1);
			slot = w->first + THREADS * (unsigned)(x % (SLOTS / THREADS));
			v = ++version[slot];
			if (is_discard(slot, v)) {
				if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				              (off_t)slot_off(slot), SLOT_LEN))
					return NULL;
			} else {
				content(slot, v, buf);
				if (pwrite(w->fd, buf, SLOT_LEN, (off_t)slot_off(slot)) != SLOT_LEN)
					return NULL;
			}
			done[i][0] = slot;
			done[i][1] = v;
		}
		if (fsync(w->fd))
			return NULL;
		for (int i = 0; i < BATCH; i++)
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%u %u\n",
			                        done[i][0], done[i][1]);
		pthread_mutex_lock(w->journal_lock);
		if (write(w->journal, line, len) != (ssize_t)len || fdatasync(w->journal)) {
			pthread_mutex_unlock(w->journal_lock);
			return NULL;
		}
		pthread_mutex_unlock(w->journal_lock);
	}
}

static int run_write(const char *file, const char *journal, uint64_t seed)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct writer w[THREADS];
	pthread_t t[THREADS];
	int fd = open(file, O_RDWR), jfd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0644);
	unsigned start[SLOTS] = { 0 };
	FILE *j;

	if (fd < 0 || jfd < 0) {
		perror("disktraffic: open");
		return 1;
	}
	/* Versions go on from the journal's, so that each version is written once. */
	j = fopen(journal, "r");
	if (j) {
		unsigned s, v;

		while (fscanf(j, "%u %u", &s, &v) == 2)
			if (s < SLOTS && v > start[s])
				start[s] = v;
		fclose(j);
	}
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ .fd = fd,
			                .journal = jfd,
			                .first = (unsigned)i,
			                .start = start,
			                .seed = mix(seed * THREADS + (uint64_t)i),
			                .journal_lock = &lock };
		pthread_create(&t[i], NULL, write_loop, &w[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	return 0;
}

static int run_verify(const char *file, const char *journal)
{
	static uint8_t got[SLOT_LEN], want[SLOT_LEN];
	unsigned acked[SLOTS] = { 0 }, s, v;
	int fd = open(file, O_RDONLY), bad = 0;
	FILE *j = fopen(journal, "r");

	if (fd < 0) {
		perror("disktraffic: open");
		return 1;
	}
	while (j && fscanf(j, "%u %u", &s, &v) == 2)
		if (s < SLOTS && v > acked[s])
			acked[s] = v;
	if (j)
		fclose(j);
	for (s = 0; s < SLOTS; s++) {
		uint64_t off = slot_off(s);

		if (pread(fd, got, SLOT_LEN, (off_t)off) != SLOT_LEN) {
			fprintf(stderr, "slot %u: short read\n", s);
			return 1;
		}
		/* Page by page of the file: a page is written whole or not at all. */
		for (uint64_t p = off; p < off + SLOT_LEN; p = (p / PAGE + 1) * PAGE) {
			uint64_t end = (p / PAGE + 1) * PAGE < off + SLOT_LEN
			                   ? (p / PAGE + 1) * PAGE
			                   : off + SLOT_LEN;
			int ok = 0;

			for (v = acked[s]; v <= acked[s] + MAX_AHEAD && !ok; v++) {
				content(s, v, want);
				ok = memcmp(got + (p - off), want + (p - off), end - p) == 0;
			}
			if (!ok) {
				fprintf(stderr,
				        "slot %u, bytes %llu-%llu: no version from %u on (the last "
				        "fsynced) matches\n",
				        s, (unsigned long long)p, (unsigned long long)end,
				        acked[s]);
				bad = 1;
			}
		}
	}
	close(fd);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "write") == 0)
		return run_write(argv[2], argv[3], strtoull(argv[4], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "verify") == 0)
		return run_verify(argv[2], argv[3]);
	fprintf(stderr, "usage: disktraffic write FILE JOURNAL SEED | verify FILE JOURNAL\n");
	return 2;
}
