/* SPDX-License-Identifier: MIT */
/*
 * Helpers for bench/devices.sh.
 *
 * io-bench net [--frames N] [--runs R]
 *   The virtio-net device model without KVM, one thread: N frames of 64
 *   and of 1500 bytes through hand-built rings in fake guest memory, in
 *   batches of 32 as a driver makes them available. tx: the guest's
 *   frames to a back end that copies each into its own buffer; rx: a back
 *   end that copies a frame into the guest's buffers. The peer: memcpy of
 *   the same bytes between the same buffers. R rounds, interleaved.
 *   Prints "KEY MEAN_FRAMES_PER_S STDDEV" for KEY in
 *   {tx,rx,memcpy}_{64,1500}.
 *
 * io-bench vnc-serve PORT SECONDS WxH
 *   A VNC server (hv/vnc.c) on 127.0.0.1:PORT over a framebuffer that a
 *   thread rewrites whole as fast as the server sends it, every page
 *   reported written, for SECONDS; prints "ready" when listening, then
 *   its report.
 *
 * io-bench vnc-idle SECONDS WxH
 *   The same server with no client for SECONDS: prints "CPU_SECONDS
 *   WAKEUPS", this process's CPU time and the server's wake-ups.
 *
 * io-bench socket SECONDS WxH
 *   The peer of vnc-serve: frames of W x H x 4 bytes written into a
 *   loopback TCP connection by one thread and read by another; prints
 *   "FRAMES SECONDS BYTES".
 *
 * io-bench dirty-log WxH [--rounds N]
 *   Telling which pages of a W x H x 4 framebuffer changed: KVM's dirty log
 *   of a memory slot (KVM_GET_DIRTY_LOG, no vCPU needed) beside comparing
 *   the frame with a copy (memcmp a page at a time, then copying the
 *   changed ones). Prints "KEY MICROSECONDS_PER_CALL" for KEY in
 *   {dirtylog,memcmp}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "hv/fb.h"
#include "hv/guest_mem.h"
#include "hv/net_backend.h"
#include "hv/virtio_net.h"
#include "hv/virtq.h"
#include "hv/vnc.h"

#define MEM_SIZE  (16ull << 20)
#define QSIZE     256u
#define BATCH     32u
#define SLOT      2048u /* a buffer a frame, header included */
#define MAX_RUNS  100
#define GPA_DESC  0x10000ull
#define GPA_AVAIL 0x11000ull
#define GPA_USED  0x12000ull
#define GPA_BUF   0x100000ull

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "io-bench: %s\n", what);
	exit(1);
}

static void parse_size(const char *s, uint32_t *w, uint32_t *h)
{
	if (sscanf(s, "%ux%u", w, h) != 2 || !*w || !*h)
		die("sizes are WxH");
}

/* --- the virtio-net device model ------------------------------------------- */

/* A back end that copies each frame into, or out of, a buffer of its own. */
struct sink {
	uint8_t buf[SLOT];
	size_t frame_len; /* rx: what each recv delivers */
	uint64_t frames;
};

static int sink_send(void *ctx, const struct iovec *iov, unsigned n)
{
	struct sink *s = ctx;

	net_iov_gather(iov, n, s->buf, net_iov_len(iov, n));
	s->frames++;
	return 0;
}

static ssize_t sink_recv(void *ctx, const struct iovec *iov, unsigned n)
{
	struct sink *s = ctx;

	net_iov_scatter(iov, n, s->buf, s->frame_len);
	s->frames++;
	return (ssize_t)s->frame_len;
}

static const struct net_backend_ops sink_ops = { .send = sink_send, .recv = sink_recv };

struct rig {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint8_t *buf;
	uint16_t avail_idx;
};

/* QSIZE one-buffer chains, buffer i at GPA_BUF + i * SLOT; device-writable for rx. */
static void rig_init(struct rig *r, bool rx)
{
	struct circ_err err = { 0 };

	memset(r, 0, sizeof(*r));
	if (guest_mem_alloc(&r->mem, MEM_SIZE, &err))
		die(err.msg);
	r->desc = guest_mem_ptr(&r->mem, GPA_DESC, QSIZE * sizeof(struct virtq_desc));
	r->avail = guest_mem_ptr(&r->mem, GPA_AVAIL, 4 + 2 * QSIZE);
	r->used = guest_mem_ptr(&r->mem, GPA_USED, 4 + 8 * QSIZE);
	r->buf = guest_mem_ptr(&r->mem, GPA_BUF, (uint64_t)SLOT * QSIZE);
	for (unsigned i = 0; i < QSIZE; i++)
		r->desc[i] = (struct virtq_desc){ GPA_BUF + (uint64_t)SLOT * i, SLOT,
			                          rx ? VIRTQ_DESC_F_WRITE : 0, 0 };
	memset(r->buf, 0x5a, (size_t)SLOT * QSIZE);
	r->q = (struct virtq){
		.size = QSIZE, .ready = true, .desc = GPA_DESC, .avail = GPA_AVAIL, .used = GPA_USED
	};
}

/* Sets tx chains' lengths: a header and a frame of len bytes. */
static void rig_set_len(struct rig *r, uint32_t len)
{
	for (unsigned i = 0; i < QSIZE; i++)
		r->desc[i].len = VIRTIO_NET_HDR_LEN + len;
}

/* n frames through the device, BATCH made available at a time; frames a second. */
static double run_device(struct rig *r, struct virtio_net *dev, bool rx, uint64_t n)
{
	double t0 = now_s();

	for (uint64_t done = 0; done < n;) {
		unsigned batch = n - done < BATCH ? (unsigned)(n - done) : BATCH;
		int got;

		for (unsigned i = 0; i < batch; i++)
			r->avail->ring[(uint16_t)(r->avail_idx + i) % QSIZE] =
			    (uint16_t)((r->avail_idx + i) % QSIZE);
		r->avail_idx = (uint16_t)(r->avail_idx + batch);
		__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
		got = rx ? virtio_net_rx_process(dev, &r->q, &r->mem)
		         : virtio_net_tx_process(dev, &r->q, &r->mem);
		/* rx stops when the ring is empty: exactly the batch each round. */
		if (got != (int)batch)
			die("the device did not complete the batch");
		done += batch;
	}
	return (double)n / (now_s() - t0);
}

/* The peer: the same frames' bytes copied between the same buffers. */
static double run_memcpy(struct rig *r, uint8_t *host, uint32_t len, uint64_t n)
{
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		memcpy(host, r->buf + (i % QSIZE) * SLOT + VIRTIO_NET_HDR_LEN, len);
		__asm__ volatile("" : : "r"(host) : "memory");
	}
	return (double)n / (now_s() - t0);
}

static void meansd(const double *v, int n, double *mean, double *sd)
{
	double s = 0, q = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		q += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static int cmd_net(int argc, char **argv)
{
	static const uint32_t lens[2] = { 64, 1500 };
	uint64_t frames = 1000000;
	int runs = 3;
	double v[3][2][MAX_RUNS];

	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--frames"))
			frames = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--runs"))
			runs = atoi(argv[i + 1]);
	}
	if (!frames || runs < 1 || runs > MAX_RUNS)
		die("--frames N (N > 0) --runs R (1 to 100)");
	for (int run = 0; run < runs; run++)
		for (int l = 0; l < 2; l++) {
			struct sink s = { .frame_len = lens[l] };
			struct net_backend be = {
				.ops = &sink_ops, .ctx = &s, .rx_fd = -1, .kind = "bench"
			};
			static const uint8_t mac[NET_MAC_LEN] = { 0x52, 0x54, 0, 0, 0, 1 };
			struct virtio_net dev;
			struct rig tx, rx;

			rig_init(&tx, false);
			rig_set_len(&tx, lens[l]);
			virtio_net_init(&dev, &be, mac);
			v[0][l][run] = run_device(&tx, &dev, false, frames);
			rig_init(&rx, true);
			v[1][l][run] = run_device(&rx, &dev, true, frames);
			v[2][l][run] = run_memcpy(&tx, s.buf, lens[l], frames);
			if (s.frames != 2 * frames)
				die("the back end did not see every frame");
			guest_mem_free(&tx.mem);
			guest_mem_free(&rx.mem);
		}
	for (int k = 0; k < 3; k++)
		for (int l = 0; l < 2; l++) {
			static const char *const names[3] = { "tx", "rx", "memcpy" };
			double m, sd;

			meansd(v[k][l], runs, &m, &sd);
			printf("%s_%u %.0f %.0f\n", names[k], lens[l], m, sd);
		}
	return 0;
}

/* --- the VNC server ----------------------------------------------------------- */

static void no_key(void *ctx, unsigned code, bool down)
{
	(void)ctx, (void)code, (void)down;
}

static void no_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
	(void)ctx, (void)x, (void)y, (void)buttons, (void)wheel;
}

static void no_release(void *ctx)
{
	(void)ctx;
}

/* Every page written since the last look: what a guest redrawing the whole screen gives. */
static int all_dirty(void *ctx, uint64_t *bitmap)
{
	const struct fb *fb = ctx;

	memset(bitmap, 0xff, (fb->size / FB_PAGE + 63) / 64 * sizeof(uint64_t));
	return 0;
}

struct painter {
	struct fb *fb;
	volatile bool stop;
};

/* Rewrites the whole frame in a new colour, over and over (a video, a scroll). */
static void *paint(void *arg)
{
	struct painter *p = arg;
	uint32_t c = 0;

	while (!p->stop) {
		uint32_t *px = (uint32_t *)p->fb->host;

		c += 0x010203;
		for (size_t i = 0; i < (size_t)p->fb->width * p->fb->height; i++)
			px[i] = c + (uint32_t)i;
	}
	return NULL;
}

static int cmd_vnc(int argc, char **argv, bool idle)
{
	struct vnc_input in = { .key = no_key, .pointer = no_pointer, .release_all = no_release };
	struct vnc_config cfg = { .addr = "127.0.0.1" };
	struct painter p = { 0 };
	struct circ_err err = { 0 };
	struct rusage ru;
	struct vnc *v;
	struct fb fb;
	pthread_t t;
	uint32_t w, h;
	double secs;

	if (argc != (idle ? 4 : 5))
		die("vnc-serve PORT SECONDS WxH | vnc-idle SECONDS WxH");
	cfg.port = idle ? 0 : (uint16_t)atoi(argv[2]);
	secs = atof(argv[idle ? 2 : 3]);
	parse_size(argv[idle ? 3 : 4], &w, &h);
	if (idle) {
		/* Any free port: nobody connects. */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
			                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);

		if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) ||
		    getsockname(s, (struct sockaddr *)&sa, &len))
			die("no free port");
		cfg.port = ntohs(sa.sin_port);
		close(s);
	}
	if (fb_alloc(&fb, w, h, &err) || vnc_start(&cfg, &fb, all_dirty, &fb, &in, &v, &err))
		die(err.msg);
	p.fb = &fb;
	if (!idle && pthread_create(&t, NULL, paint, &p))
		die("no painter thread");
	printf("ready\n");
	fflush(stdout);
	struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };

	nanosleep(&ts, NULL);
	if (!idle) {
		p.stop = true;
		pthread_join(t, NULL);
	}
	if (idle) {
		getrusage(RUSAGE_SELF, &ru);
		printf("%.6f ", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	}
	vnc_stop(v);
	vnc_report(v, stdout);
	vnc_free(v);
	fb_free(&fb);
	return 0;
}

/* --- the socket peer ------------------------------------------------------------ */

struct reader {
	int fd;
	size_t frame;
	uint64_t bytes;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	char *buf = malloc(1 << 20);
	ssize_t n;

	if (!buf)
		die("out of memory");
	while ((n = read(r->fd, buf, 1 << 20)) > 0)
		r->bytes += (uint64_t)n;
	free(buf);
	return NULL;
}

static int cmd_socket(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct reader r = { 0 };
	uint64_t frames = 0;
	uint32_t w, h;
	double secs, t0, end;
	pthread_t t;
	uint8_t *frame;
	int l, c;

	if (argc != 4)
		die("socket SECONDS WxH");
	secs = atof(argv[2]);
	parse_size(argv[3], &w, &h);
	r.frame = (size_t)w * h * 4;
	frame = malloc(r.frame);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (!frame || l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &len))
		die("no loopback socket");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (r.fd = accept(l, NULL, NULL)) < 0)
		die("no loopback connection");
	memset(frame, 0x33, r.frame);
	if (pthread_create(&t, NULL, read_all, &r))
		die("no reader thread");
	t0 = now_s();
	end = t0 + secs;
	while (now_s() < end) {
		for (size_t off = 0; off < r.frame;) {
			ssize_t n = write(c, frame + off, r.frame - off);

			if (n <= 0)
				die("write failed");
			off += (size_t)n;
		}
		frames++;
	}
	shutdown(c, SHUT_WR);
	pthread_join(t, NULL);
	printf("%llu %.3f %llu\n", (unsigned long long)frames, now_s() - t0,
	       (unsigned long long)r.bytes);
	free(frame);
	return 0;
}

/* --- KVM's dirty log beside a comparison ------------------------------------------ */

static int cmd_dirty_log(int argc, char **argv)
{
	struct kvm_userspace_memory_region region = { .slot = 0, .flags = KVM_MEM_LOG_DIRTY_PAGES };
	uint32_t w, h;
	int rounds = 2000, kvm, vm;
	size_t bytes, pages;
	uint8_t *fb, *shadow;
	uint64_t *bitmap;
	double t0, t_log, t_cmp;

	if (argc < 3)
		die("dirty-log WxH [--rounds N]");
	parse_size(argv[2], &w, &h);
	if (argc == 5 && !strcmp(argv[3], "--rounds"))
		rounds = atoi(argv[4]);
	bytes = ((size_t)w * h * 4 + FB_PAGE - 1) / FB_PAGE * FB_PAGE;
	pages = bytes / FB_PAGE;
	fb = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shadow = malloc(bytes);
	bitmap = calloc((pages + 63) / 64, sizeof(uint64_t));
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fb == MAP_FAILED || !shadow || !bitmap || kvm < 0)
		die("no memory or no /dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	region.memory_size = bytes;
	region.userspace_addr = (uint64_t)(uintptr_t)fb;
	if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("cannot make a VM with a dirty-logged slot");
	memset(fb, 1, bytes);
	memcpy(shadow, fb, bytes);
	t0 = now_s();
	for (int i = 0; i < rounds; i++) {
		struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };

		if (ioctl(vm, KVM_GET_DIRTY_LOG, &log) < 0)
			die("KVM_GET_DIRTY_LOG failed");
	}
	t_log = (now_s() - t0) / rounds;
	/* The comparison's best case: nothing changed, every page compared. */
	t0 = now_s();
	for (int i = 0; i < rounds; i++)
		for (size_t p = 0; p < pages; p++)
			if (memcmp(fb + p * FB_PAGE, shadow + p * FB_PAGE, FB_PAGE))
				memcpy(shadow + p * FB_PAGE, fb + p * FB_PAGE, FB_PAGE);
	t_cmp = (now_s() - t0) / rounds;
	printf("dirtylog %.3f\nmemcmp %.3f\n", t_log * 1e6, t_cmp * 1e6);
	close(vm);
	close(kvm);
	munmap(fb, bytes);
	free(shadow);
	free(bitmap);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "net"))
		return cmd_net(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "vnc-serve"))
		return cmd_vnc(argc, argv, false);
	if (argc >= 2 && !strcmp(argv[1], "vnc-idle"))
		return cmd_vnc(argc, argv, true);
	if (argc >= 2 && !strcmp(argv[1], "socket"))
		return cmd_socket(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "dirty-log"))
		return cmd_dirty_log(argc, argv);
	fprintf(stderr, "usage: io-bench net [--frames N] [--runs R]\n"
	                "       io-bench vnc-serve PORT SECONDS WxH\n"
	                "       io-bench vnc-idle SECONDS WxH\n"
	                "       io-bench socket SECONDS WxH\n"
	                "       io-bench dirty-log WxH [--rounds N]\n");
	return 2;
}
