/* SPDX-License-Identifier: MIT */
/*
 * bench/disk.sh's helper: reads through the vdisk API, as hv's virtio-blk
 * backend does (no FUSE), beside pread of a raw copy of the same image.
 *
 * vdisk-bench STATE DISK RAW [--runs R] [--seconds S]
 *   Opens DISK of STATE (every block cached already, read-only) and RAW,
 *   and measures, R rounds interleaved, each for S seconds (default 2), on
 *   the 64 KiB extents of RAW that hold data (circ answers a hole without
 *   a read, which would flatter it):
 *     seq64k:  64 KiB reads of those extents in order, again and again;
 *     rand4k:  4 KiB reads at pseudo-random 4 KiB-aligned offsets in them;
 *   the same offsets in the same order on both sides, the page cache warm
 *   (one whole read of each first). Prints one line per figure:
 *   "KEY VDISK_OPS_PER_S PREAD_OPS_PER_S" with the medians of the rounds.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vdisk/disk.h"

#define MAX_RUNS 15

struct side {
	struct vdisk *vd; /* or */
	int fd;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int side_read(const struct side *s, void *buf, size_t len, uint64_t off)
{
	if (s->vd)
		return vdisk_read(s->vd, buf, len, off);
	return pread(s->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

#define EXTENT (1u << 16)

/* The 64 KiB extents of the raw image that are not all zeros. */
struct extents {
	uint64_t *v;
	size_t n;
};

/* Reads for about secs seconds; returns reads per second, or -1 on error. */
static double run(const struct side *s, const struct extents *ex, size_t len, bool random,
                  double secs)
{
	static uint8_t buf[EXTENT];
	uint64_t x = 0x9e3779b97f4a7c15ull, n = 0;
	size_t next = 0;
	double t0 = now_s(), t;

	do {
		for (int k = 0; k < 256; k++, n++) {
			uint64_t off;

			if (random) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				off = ex->v[x % ex->n] * EXTENT + (x >> 32) % (EXTENT / len) * len;
			} else {
				off = ex->v[next] * EXTENT;
				next = next + 1 == ex->n ? 0 : next + 1;
			}
			if (side_read(s, buf, len, off))
				return -1;
		}
		t = now_s() - t0;
	} while (t < secs);
	return (double)n / t;
}

static int find_extents(int fd, uint64_t size, struct extents *ex)
{
	static uint8_t buf[EXTENT], zero[EXTENT];

	ex->v = calloc(size / EXTENT + 1, sizeof(*ex->v));
	if (!ex->v)
		return -1;
	for (uint64_t i = 0; (i + 1) * EXTENT <= size; i++) {
		if (pread(fd, buf, EXTENT, (off_t)(i * EXTENT)) != EXTENT)
			return -1;
		if (memcmp(buf, zero, EXTENT))
			ex->v[ex->n++] = i;
	}
	return ex->n ? 0 : -1;
}

static int warm(const struct side *s, uint64_t size)
{
	static uint8_t buf[1 << 16];

	for (uint64_t off = 0; off < size; off += sizeof(buf))
		if (side_read(s, buf, size - off < sizeof(buf) ? size - off : sizeof(buf), off))
			return -1;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	struct vdisk_options o = { .read_only = true };
	double secs = 2, res[2][2][MAX_RUNS];
	struct side sides[2] = { { NULL, -1 }, { NULL, -1 } };
	struct extents ex = { 0 };
	struct circ_err err;
	uint64_t size;
	int runs = 3;

	if (argc < 4) {
		fprintf(stderr, "usage: vdisk-bench STATE DISK RAW [--runs R] [--seconds S]\n");
		return 2;
	}
	for (int i = 4; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--runs") == 0)
			runs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			secs = atof(argv[i + 1]);
	}
	if (runs < 1 || runs > MAX_RUNS || secs <= 0) {
		fprintf(stderr, "vdisk-bench: bad --runs or --seconds\n");
		return 2;
	}
	if (vdisk_open(argv[1], argv[2], &o, &sides[0].vd, &err)) {
		fprintf(stderr, "vdisk-bench: %s\n", err.msg);
		return 1;
	}
	sides[1].fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (sides[1].fd < 0) {
		perror(argv[3]);
		return 1;
	}
	size = vdisk_size(sides[0].vd);
	if (find_extents(sides[1].fd, size, &ex)) {
		fprintf(stderr, "vdisk-bench: %s holds no data, or a read failed\n", argv[3]);
		return 1;
	}
	/* Warm: every byte read once on both sides, the figures then compare the read paths. */
	for (int s = 0; s < 2; s++)
		if (warm(&sides[s], size)) {
			fprintf(stderr, "vdisk-bench: a read failed\n");
			return 1;
		}
	for (int r = 0; r < runs; r++)
		for (int f = 0; f < 2; f++)
			for (int s = 0; s < 2; s++) {
				res[f][s][r] = run(&sides[s], &ex, f ? 4096 : EXTENT, f == 1, secs);
				if (res[f][s][r] < 0) {
					fprintf(stderr, "vdisk-bench: a read failed\n");
					return 1;
				}
			}
	printf("seq64k %.0f %.0f\n", median(res[0][0], runs), median(res[0][1], runs));
	printf("rand4k %.0f %.0f\n", median(res[1][0], runs), median(res[1][1], runs));
	close(sides[1].fd);
	free(ex.v);
	return vdisk_close(sides[0].vd) ? 1 : 0;
}
