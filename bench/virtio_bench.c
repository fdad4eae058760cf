/* SPDX-License-Identifier: MIT */
/*
 * Helpers for bench/hv.sh.
 *
 * virtio-bench device [--reqs N] [--runs R] [--dir DIR]
 *   The virtio-blk device model without KVM: virtio_blk_process on a
 *   hand-built split virtqueue in fake guest memory (guest_mem_alloc), one
 *   thread, 4 KiB reads at pseudo-random 4 KiB offsets of a 64 MiB disk,
 *   depth 1 (one request made available, then processed) and depth 32
 *   (32 at once). Each figure has a peer doing the same bytes in the same
 *   run, in the same guest buffers, at the same offsets:
 *     mem:  the device over blk_backend_open_memory, beside memcpy from a
 *           host buffer holding the same 64 MiB;
 *     file: the device over blk_backend_open_file on a file in DIR (tmpfs
 *           by default: /dev/shm), beside pread from the same file.
 *   R rounds, each measuring every figure once (N requests), interleaved.
 *   Prints one line per figure: "KEY MEAN_REQS_PER_S STDDEV", KEY one of
 *   {dev_mem,memcpy,dev_file,pread}_qd{1,32}.
 *
 * virtio-bench first-byte [--timeout S] OUTFILE CMD [ARG...]
 *   Runs CMD with its stdout on a pipe, copied to OUTFILE; prints
 *   "FIRST_BYTE_S EXIT_S STATUS": seconds from just before fork+exec to the
 *   first byte read from the pipe (-1 if none came) and to the child's exit,
 *   and its exit status (128 + signal when killed; after S seconds, default
 *   60, it is killed). Exits 0 unless CMD could not be run.
 *
 * virtio-bench kvm-speed
 *   Prints the instructions a second KVM runs guest code at here
 *   (hv_measure_speed): billions with VT-x or AMD-V, about a million where
 *   KVM emulates.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hv/blk_backend.h"
#include "hv/guest_mem.h"
#include "hv/hv.h"
#include "hv/virtio_blk.h"
#include "hv/virtq.h"

#define DISK_SIZE (64ull << 20)
#define MEM_SIZE  (16ull << 20)
#define BLOCK     4096u
#define QSIZE     256u
#define MAX_DEPTH 32u
#define MAX_RUNS  100

/* Fake guest physical layout. */
#define GPA_DESC   0x10000ull
#define GPA_AVAIL  0x11000ull
#define GPA_USED   0x12000ull
#define GPA_HDR    0x20000ull  /* 16 bytes a slot */
#define GPA_STATUS 0x21000ull  /* 1 byte a slot */
#define GPA_DATA   0x100000ull /* 4 KiB a slot */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *what)
{
	fprintf(stderr, "virtio-bench: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	exit(1);
}

/* The offsets every figure reads, in order: xorshift64 over the disk's 4 KiB blocks. */
static uint64_t *make_offsets(size_t n)
{
	uint64_t *off = malloc(n * sizeof(*off)), x = 0x9e3779b97f4a7c15ull;

	if (!off)
		die("%s", "out of memory");
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off[i] = (x % (DISK_SIZE / BLOCK)) * BLOCK;
	}
	return off;
}

struct rig {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	struct virtio_blk_outhdr *hdr;
	uint8_t *status, *data;
	uint16_t avail_idx;
};

/* Guest memory with the rings and MAX_DEPTH three-descriptor chains (header, data, status). */
static void rig_init(struct rig *r)
{
	struct circ_err err = { 0 };

	memset(r, 0, sizeof(*r));
	if (guest_mem_alloc(&r->mem, MEM_SIZE, &err))
		die("%s", err.msg);
	r->desc = guest_mem_ptr(&r->mem, GPA_DESC, QSIZE * sizeof(struct virtq_desc));
	r->avail = guest_mem_ptr(&r->mem, GPA_AVAIL, 4 + 2 * QSIZE);
	r->used = guest_mem_ptr(&r->mem, GPA_USED, 4 + 8 * QSIZE);
	r->hdr = guest_mem_ptr(&r->mem, GPA_HDR, 16 * MAX_DEPTH);
	r->status = guest_mem_ptr(&r->mem, GPA_STATUS, MAX_DEPTH);
	r->data = guest_mem_ptr(&r->mem, GPA_DATA, (uint64_t)BLOCK * MAX_DEPTH);
	for (unsigned i = 0; i < MAX_DEPTH; i++) {
		uint16_t d = (uint16_t)(3 * i);

		r->desc[d] = (struct virtq_desc){ GPA_HDR + 16 * i, 16, VIRTQ_DESC_F_NEXT,
			                          (uint16_t)(d + 1) };
		r->desc[d + 1] = (struct virtq_desc){ GPA_DATA + (uint64_t)BLOCK * i, BLOCK,
			                              VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
			                              (uint16_t)(d + 2) };
		r->desc[d + 2] = (struct virtq_desc){ GPA_STATUS + i, 1, VIRTQ_DESC_F_WRITE, 0 };
	}
	/* What the transport holds once the driver has set the queue up. */
	r->q = (struct virtq){
		.size = QSIZE, .ready = true, .desc = GPA_DESC, .avail = GPA_AVAIL, .used = GPA_USED
	};
}

/*
 * n reads through the device, depth at a time, as a driver and the
 * transport's worker would do them: fill the headers and the avail ring,
 * publish the index, process, ask whether to interrupt, check the used
 * index and every status byte. With check, the data too (untimed passes).
 */
static void run_device(struct rig *r, struct virtio_blk *b, const uint64_t *off, size_t n,
                       unsigned depth, const uint8_t *want)
{
	for (size_t done = 0; done < n; done += depth) {
		unsigned batch = n - done < depth ? (unsigned)(n - done) : depth;
		int got;

		for (unsigned i = 0; i < batch; i++) {
			r->hdr[i].type = VIRTIO_BLK_T_IN;
			r->hdr[i].sector = off[done + i] / VIRTIO_BLK_SECTOR;
			r->status[i] = 0xff;
			r->avail->ring[(uint16_t)(r->avail_idx + i) % QSIZE] = (uint16_t)(3 * i);
		}
		r->avail_idx = (uint16_t)(r->avail_idx + batch);
		__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
		got = virtio_blk_process(b, &r->q, &r->mem);
		if (got != (int)batch || !virtq_should_interrupt(&r->q, &r->mem) ||
		    __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE) != r->avail_idx)
			die("%s", "the device did not complete a batch");
		for (unsigned i = 0; i < batch; i++) {
			if (r->status[i] != VIRTIO_BLK_S_OK)
				die("%s", "a read failed");
			if (want &&
			    memcmp(r->data + (size_t)BLOCK * i, want + off[done + i], BLOCK))
				die("%s", "a read returned the wrong bytes");
		}
	}
}

/* The peers: the same bytes into the same guest buffers, by memcpy or pread. */
static void run_memcpy(struct rig *r, const uint8_t *src, const uint64_t *off, size_t n,
                       unsigned depth)
{
	for (size_t done = 0; done < n; done += depth) {
		unsigned batch = n - done < depth ? (unsigned)(n - done) : depth;

		for (unsigned i = 0; i < batch; i++)
			memcpy(r->data + (size_t)BLOCK * i, src + off[done + i], BLOCK);
		__asm__ volatile("" : : "r"(r->data) : "memory");
	}
}

static void run_pread(struct rig *r, int fd, const uint64_t *off, size_t n, unsigned depth)
{
	for (size_t done = 0; done < n; done += depth) {
		unsigned batch = n - done < depth ? (unsigned)(n - done) : depth;

		for (unsigned i = 0; i < batch; i++)
			if (pread(fd, r->data + (size_t)BLOCK * i, BLOCK, (off_t)off[done + i]) !=
			    (ssize_t)BLOCK)
				die("%s", "pread failed");
	}
}

enum fig {
	DEV_MEM,
	MEMCPY,
	DEV_FILE,
	PREAD,
	N_FIGS
};
static const char *const fig_names[N_FIGS] = { "dev_mem", "memcpy", "dev_file", "pread" };

struct ctx {
	struct rig rig;
	struct blk_backend mem_be, file_be;
	struct virtio_blk mem_blk, file_blk;
	uint8_t *src;
	int fd;
	const uint64_t *off;
	size_t n;
};

static void run_fig(struct ctx *c, enum fig f, unsigned depth, const uint8_t *check)
{
	switch (f) {
	case DEV_MEM:
		run_device(&c->rig, &c->mem_blk, c->off, c->n, depth, check);
		break;
	case MEMCPY:
		run_memcpy(&c->rig, c->src, c->off, c->n, depth);
		break;
	case DEV_FILE:
		run_device(&c->rig, &c->file_blk, c->off, c->n, depth, check);
		break;
	default:
		run_pread(&c->rig, c->fd, c->off, c->n, depth);
		break;
	}
}

static void mean_sd(const double *v, int n, double *mean, double *sd)
{
	double s = 0, d = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		d += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(d / (n - 1)) : 0;
}

static int cmd_device(int argc, char **argv)
{
	static const unsigned depths[] = { 1, MAX_DEPTH };
	double rps[2][N_FIGS][MAX_RUNS];
	const char *dir = "/dev/shm";
	char path[4096];
	struct circ_err err = { 0 };
	struct ctx c = { .n = 100000, .fd = -1 };
	int runs = 3, rc;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--reqs") && i + 1 < argc)
			c.n = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else
			die("device: unknown argument %s", argv[i]);
	}
	if (c.n < MAX_DEPTH || runs < 1 || runs > MAX_RUNS)
		die("%s", "device: --reqs must be >= 32 and --runs between 1 and 100");
	c.off = make_offsets(c.n);

	/* The disk: a pattern no block repeats, in host memory, the memory backend and a file. */
	c.src = malloc(DISK_SIZE);
	if (!c.src)
		die("%s", "out of memory");
	for (uint64_t i = 0; i < DISK_SIZE / 8; i++)
		((uint64_t *)(void *)c.src)[i] = i * 0x9e3779b97f4a7c15ull;
	rc = blk_backend_open_memory(DISK_SIZE, &c.mem_be);
	if (rc)
		die("memory backend: %s", strerror(-rc));
	if (c.mem_be.ops->write(c.mem_be.ctx, c.src, DISK_SIZE, 0))
		die("%s", "filling the memory backend failed");
	snprintf(path, sizeof(path), "%s/virtio-bench.XXXXXX", dir);
	c.fd = mkstemp(path);
	if (c.fd < 0)
		die("cannot create a file in %s", dir);
	if (write(c.fd, c.src, DISK_SIZE) != (ssize_t)DISK_SIZE)
		die("writing %s failed", path);
	if (blk_backend_open_file(path, true, &c.file_be, &err))
		die("%s", err.msg);
	unlink(path);
	rig_init(&c.rig);
	virtio_blk_init(&c.mem_blk, &c.mem_be);
	virtio_blk_init(&c.file_blk, &c.file_be);

	/* One untimed pass of each, checking the device's bytes: page tables and caches warm. */
	for (unsigned d = 0; d < 2; d++)
		for (int f = 0; f < N_FIGS; f++)
			run_fig(&c, (enum fig)f, depths[d], c.src);
	for (int run = 0; run < runs; run++)
		for (unsigned d = 0; d < 2; d++)
			for (int f = 0; f < N_FIGS; f++) {
				double t0 = now_s();

				run_fig(&c, (enum fig)f, depths[d], NULL);
				rps[d][f][run] = (double)c.n / (now_s() - t0);
			}
	for (unsigned d = 0; d < 2; d++)
		for (int f = 0; f < N_FIGS; f++) {
			double mean, sd;

			mean_sd(rps[d][f], runs, &mean, &sd);
			printf("%s_qd%u %.0f %.0f\n", fig_names[f], depths[d], mean, sd);
		}
	blk_backend_close(&c.mem_be);
	blk_backend_close(&c.file_be);
	guest_mem_free(&c.rig.mem);
	close(c.fd);
	free(c.src);
	free((void *)c.off);
	return 0;
}

static volatile pid_t child_pid;

static void on_alarm(int sig)
{
	(void)sig;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
}

static int cmd_first_byte(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	int p[2], out, status, a = 2;
	unsigned timeout = 60;
	double t0, t_first = -1, t_exit;
	bool first = true;
	pid_t pid;

	if (argc > a + 1 && !strcmp(argv[a], "--timeout")) {
		timeout = (unsigned)strtoul(argv[a + 1], NULL, 10);
		a += 2;
	}
	if (argc < a + 2)
		die("%s", "usage: virtio-bench first-byte [--timeout S] OUTFILE CMD [ARG...]");
	out = open(argv[a], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || pipe2(p, O_CLOEXEC))
		die("cannot open %s or a pipe", argv[a]);
	sigaction(SIGALRM, &sa, NULL);
	t0 = now_s();
	pid = fork();
	if (pid < 0)
		die("%s", "fork failed");
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp(argv[a + 1], argv + a + 1);
		fprintf(stderr, "virtio-bench: cannot run %s: %s\n", argv[a + 1], strerror(errno));
		_exit(127);
	}
	child_pid = pid;
	alarm(timeout);
	close(p[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(p[0], buf, first ? 1 : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (first) {
			t_first = now_s() - t0;
			first = false;
		}
		if (write(out, buf, (size_t)n) != n)
			die("writing %s failed", argv[a]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("%s", "waitpid failed");
	t_exit = now_s() - t0;
	alarm(0);
	close(out);
	printf("%.6f %.6f %d\n", t_first, t_exit,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "device"))
		return cmd_device(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "first-byte"))
		return cmd_first_byte(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "kvm-speed")) {
		struct circ_err err = { 0 };
		double ips = hv_measure_speed(&err);

		if (ips <= 0)
			die("kvm-speed: %s", err.msg[0] ? err.msg : "KVM is unusable");
		printf("%.0f\n", ips);
		return 0;
	}
	fprintf(stderr, "usage: virtio-bench device [--reqs N] [--runs R] [--dir DIR]\n"
	                "       virtio-bench first-byte [--timeout S] OUTFILE CMD [ARG...]\n"
	                "       virtio-bench kvm-speed\n");
	return 2;
}
