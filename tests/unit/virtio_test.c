/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk and virtio-pci as device models, without KVM: the tests play
 * the guest driver, building descriptor tables and rings by hand in a fake
 * guest memory, and check that every request completes as the spec says,
 * that malformed ones complete with an error, and that the device writes
 * nowhere in guest memory but the buffers it was given and the used ring.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hv/blk_backend.h"
#include "hv/bus.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/pci.h"
#include "hv/virtio_blk.h"
#include "hv/virtio_pci.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define MEM_SIZE   (16ull << 20)
#define DISK_SIZE  (4ull << 20)
#define DISK_SECTS (DISK_SIZE / 512)
#define QSIZE      256
#define DESC_GPA   0x1000ull
#define AVAIL_GPA  0x3000ull
#define USED_GPA   0x4000ull
#define HEAP_GPA   0x10000ull
#define HEAP_END   (8ull << 20)
#define CANARY     0xcb
#define SENTINEL   0xee /* a status byte before the device writes it */
#define MAX_ALLOW  64

/* The test's guest driver. */

struct drv {
	struct guest_mem *m;
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t avail_idx; /* the next index the driver publishes */
	uint16_t next_desc; /* the next free descriptor, from 0 after each run */
	uint64_t heap;
};

static void *gptr(struct drv *d, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(d->m, gpa, len);

	ck_assert_ptr_nonnull(p);
	return p;
}

static uint64_t galloc(struct drv *d, uint64_t len)
{
	uint64_t at = (d->heap + 63) & ~63ull;

	ck_assert_uint_le(at + len, HEAP_END);
	d->heap = at + len;
	return at;
}

static void put_desc(struct drv *d, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
	struct virtq_desc desc = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	memcpy(gptr(d, table + 16ull * i, 16), &desc, 16);
}

static void set_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	ck_assert_uint_lt(i, d->size);
	put_desc(d, d->desc, i, addr, len, flags, next);
}

static struct virtq_avail *avail_ring(struct drv *d)
{
	return gptr(d, d->avail, 4 + 2ull * d->size);
}

static struct virtq_used *used_ring(struct drv *d)
{
	return gptr(d, d->used, 4 + 8ull * d->size);
}

static void publish(struct drv *d, uint16_t head)
{
	struct virtq_avail *a = avail_ring(d);

	a->ring[d->avail_idx % d->size] = htole16(head);
	d->avail_idx++;
	__atomic_store_n(&a->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
}

struct tbuf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static uint16_t add_chain(struct drv *d, const struct tbuf *b, unsigned n)
{
	uint16_t head = d->next_desc;

	ck_assert_uint_le(d->next_desc + n, d->size);
	for (unsigned i = 0; i < n; i++)
		set_desc(d, (uint16_t)(head + i), b[i].gpa, b[i].len,
		         (uint16_t)((b[i].write ? VIRTQ_DESC_F_WRITE : 0) |
		                    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
		         (uint16_t)(head + i + 1));
	d->next_desc = (uint16_t)(d->next_desc + n);
	publish(d, head);
	return head;
}

static uint16_t used_idx(struct drv *d)
{
	return le16toh(__atomic_load_n(&used_ring(d)->idx, __ATOMIC_ACQUIRE));
}

static struct virtq_used_elem used_elem(struct drv *d, uint16_t idx)
{
	struct virtq_used_elem e = used_ring(d)->ring[idx % d->size];

	e.id = le32toh(e.id);
	e.len = le32toh(e.len);
	return e;
}

static void put_hdr(struct drv *d, uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {
		.type = htole32(type),
		.sector = htole64(sector),
	};

	memcpy(gptr(d, gpa, sizeof(h)), &h, sizeof(h));
}

/* A well-formed request: header, data buffers of the given lengths, status. */
struct treq {
	uint64_t hdr, status;
	uint64_t data[8];
	uint32_t dlen[8];
	unsigned nd;
	uint64_t total;
	uint16_t head;
};

static void blk_req(struct drv *d, uint32_t type, uint64_t sector, const uint32_t *lens,
                    unsigned nd, bool dev_writes, struct treq *t)
{
	struct tbuf b[10];
	unsigned n = 0;

	ck_assert_uint_le(nd, 8);
	memset(t, 0, sizeof(*t));
	t->hdr = galloc(d, 16);
	put_hdr(d, t->hdr, type, sector);
	b[n++] = (struct tbuf){ t->hdr, 16, false };
	for (unsigned i = 0; i < nd; i++) {
		t->data[i] = galloc(d, lens[i]);
		t->dlen[i] = lens[i];
		t->total += lens[i];
		b[n++] = (struct tbuf){ t->data[i], lens[i], dev_writes };
	}
	t->nd = nd;
	t->status = galloc(d, 1);
	*(uint8_t *)gptr(d, t->status, 1) = SENTINEL;
	b[n++] = (struct tbuf){ t->status, 1, true };
	t->head = add_chain(d, b, n);
}

static uint8_t status_of(struct drv *d, const struct treq *t)
{
	return *(uint8_t *)gptr(d, t->status, 1);
}

/* Copies between the host and a request's data buffers, as one stream. */
static void treq_fill(struct drv *d, const struct treq *t, const uint8_t *src)
{
	for (unsigned i = 0; i < t->nd; i++) {
		memcpy(gptr(d, t->data[i], t->dlen[i]), src, t->dlen[i]);
		src += t->dlen[i];
	}
}

static void treq_collect(struct drv *d, const struct treq *t, uint8_t *dst)
{
	for (unsigned i = 0; i < t->nd; i++) {
		memcpy(dst, gptr(d, t->data[i], t->dlen[i]), t->dlen[i]);
		dst += t->dlen[i];
	}
}

/* A backend that counts and can fail, over the memory backend. */

struct wrap {
	struct blk_backend inner;
	unsigned flushes, discards;
	int fail; /* returned by read, write, flush and discard when nonzero */
};

static int wrap_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct wrap *w = ctx;

	return w->fail ? w->fail : w->inner.ops->read(w->inner.ctx, buf, len, off);
}

static int wrap_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct wrap *w = ctx;

	return w->fail ? w->fail : w->inner.ops->write(w->inner.ctx, buf, len, off);
}

static int wrap_flush(void *ctx)
{
	struct wrap *w = ctx;

	w->flushes++;
	return w->fail ? w->fail : w->inner.ops->flush(w->inner.ctx);
}

static int wrap_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct wrap *w = ctx;

	w->discards++;
	return w->fail ? w->fail : w->inner.ops->discard(w->inner.ctx, off, len);
}

static const struct blk_backend_ops wrap_ops = {
	.read = wrap_read,
	.write = wrap_write,
	.flush = wrap_flush,
	.discard = wrap_discard,
};

/* The device-model rig: guest memory, a virtq on it, virtio_blk over a wrapped memory disk. */

struct range {
	uint64_t gpa, len;
};

struct rig {
	struct guest_mem m;
	void *guard[2];
	struct drv d;
	struct wrap w;
	struct blk_backend be;
	struct virtio_blk blk;
	struct virtq q;
	uint8_t *shadow;
	struct range allow[MAX_ALLOW];
	unsigned nallow;
};

/* PROT_NONE pages either side of guest RAM, where free: a stray access faults. */
static void guard_pages(struct rig *r)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *want[2] = { r->m.host - pg, r->m.host + r->m.size };

	for (int i = 0; i < 2; i++) {
		void *p = mmap(want[i], (size_t)pg, PROT_NONE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p != MAP_FAILED && p != want[i])
			munmap(p, (size_t)pg);
		r->guard[i] = p == want[i] ? p : NULL;
	}
}

static void drv_init(struct drv *d, struct guest_mem *m)
{
	memset(d, 0, sizeof(*d));
	d->m = m;
	d->desc = DESC_GPA;
	d->avail = AVAIL_GPA;
	d->used = USED_GPA;
	d->size = QSIZE;
	d->heap = HEAP_GPA;
}

static void rig_init(struct rig *r, bool read_only)
{
	struct circ_err err;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(guest_mem_alloc(&r->m, MEM_SIZE, &err), 0);
	memset(r->m.host, CANARY, r->m.size);
	guard_pages(r);
	drv_init(&r->d, &r->m);
	memset(gptr(&r->d, AVAIL_GPA, 4), 0, 4);
	memset(gptr(&r->d, USED_GPA, 4), 0, 4);
	ck_assert_int_eq(blk_backend_open_memory(DISK_SIZE, &r->w.inner), 0);
	r->be = r->w.inner;
	r->be.ops = &wrap_ops;
	r->be.ctx = &r->w;
	r->be.read_only = read_only;
	virtio_blk_init(&r->blk, &r->be);
	r->q.size = QSIZE;
	r->q.desc = DESC_GPA;
	r->q.avail = AVAIL_GPA;
	r->q.used = USED_GPA;
	r->q.ready = true;
	r->shadow = malloc(r->m.size);
	ck_assert_ptr_nonnull(r->shadow);
}

static void rig_fini(struct rig *r)
{
	long pg = sysconf(_SC_PAGESIZE);

	for (int i = 0; i < 2; i++)
		if (r->guard[i])
			munmap(r->guard[i], (size_t)pg);
	free(r->shadow);
	blk_backend_close(&r->w.inner);
	guest_mem_free(&r->m);
}

/* Marks [gpa, gpa + len) as a place the device may write in the next run. */
static void allow(struct rig *r, uint64_t gpa, uint64_t len)
{
	ck_assert_uint_lt(r->nallow, MAX_ALLOW);
	r->allow[r->nallow++] = (struct range){ gpa, len };
}

static bool allowed(const struct rig *r, uint64_t gpa)
{
	if (gpa >= USED_GPA && gpa < USED_GPA + 4 + 8 * QSIZE)
		return true;
	for (unsigned i = 0; i < r->nallow; i++)
		if (gpa >= r->allow[i].gpa && gpa - r->allow[i].gpa < r->allow[i].len)
			return true;
	return false;
}

/* Runs the device over the queue; every byte it changed must be in an allowed range. */
static int rig_run(struct rig *r)
{
	int n;

	memcpy(r->shadow, r->m.host, r->m.size);
	n = virtio_blk_process(&r->blk, &r->q, &r->m);
	for (uint64_t off = 0; off < r->m.size; off += 4096) {
		if (!memcmp(r->m.host + off, r->shadow + off, 4096))
			continue;
		for (uint64_t i = off; i < off + 4096; i++)
			ck_assert_msg(r->m.host[i] == r->shadow[i] || allowed(r, i),
			              "guest byte 0x%llx changed outside the device's buffers",
			              (unsigned long long)i);
	}
	r->nallow = 0;
	r->d.next_desc = 0;
	r->d.heap = HEAP_GPA;
	return n;
}

/* Submits one request, allowing its writable parts, runs it and checks it completed alone. */
static uint8_t run_req(struct rig *r, uint32_t type, uint64_t sector, const uint32_t *lens,
                       unsigned nd, bool dev_writes, struct treq *t)
{
	uint16_t before = used_idx(&r->d);
	struct virtq_used_elem e;

	blk_req(&r->d, type, sector, lens, nd, dev_writes, t);
	if (dev_writes)
		for (unsigned i = 0; i < nd; i++)
			allow(r, t->data[i], t->dlen[i]);
	allow(r, t->status, 1);
	ck_assert_int_eq(rig_run(r), 1);
	ck_assert_uint_eq(used_idx(&r->d), (uint16_t)(before + 1));
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, t->head);
	ck_assert_uint_eq(e.len, (dev_writes ? t->total : 0) + 1);
	return status_of(&r->d, t);
}

static uint8_t do_write(struct rig *r, uint64_t sector, const uint32_t *lens, unsigned nd,
                        const uint8_t *src)
{
	struct treq t;
	uint8_t st;

	/* Build, fill, then run: run_req would run before the data is in place. */
	blk_req(&r->d, VIRTIO_BLK_T_OUT, sector, lens, nd, false, &t);
	treq_fill(&r->d, &t, src);
	allow(r, t.status, 1);
	ck_assert_int_eq(rig_run(r), 1);
	st = status_of(&r->d, &t);
	return st;
}

static uint8_t do_read(struct rig *r, uint64_t sector, const uint32_t *lens, unsigned nd,
                       uint8_t *dst)
{
	struct treq t;
	uint8_t st = run_req(r, VIRTIO_BLK_T_IN, sector, lens, nd, true, &t);

	treq_collect(&r->d, &t, dst);
	return st;
}

static void disk_bytes(struct rig *r, uint64_t off, void *buf, size_t len)
{
	ck_assert_int_eq(r->w.inner.ops->read(r->w.inner.ctx, buf, len, off), 0);
}

/* Device model: requests. */

START_TEST(test_rw_roundtrip)
{
	static const struct {
		uint64_t sector;
		uint32_t wlens[4], rlens[4];
		unsigned nw, nr;
	} cases[] = {
		{ 0, { 512 }, { 512 }, 1, 1 },
		{ 1, { 4096 }, { 1000, 3096 }, 1, 2 },
		{ 7, { 100, 412, 1024 }, { 1536 }, 3, 1 },
		{ 1000, { 4096, 4096, 4096, 512 }, { 512, 4096, 4096, 4096 }, 4, 4 },
		{ DISK_SECTS - 8, { 1, 511, 2048, 1536 }, { 4096 }, 4, 1 },
		{ DISK_SECTS - 1, { 512 }, { 256, 256 }, 1, 2 },
	};
	struct rig r;

	rig_init(&r, false);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint64_t total = 0;
		uint8_t *src, *dst, *disk;

		for (unsigned i = 0; i < cases[c].nw; i++)
			total += cases[c].wlens[i];
		src = malloc(total);
		dst = malloc(total);
		disk = malloc(total);
		fill_random(src, total, c + 1);
		ck_assert_uint_eq(do_write(&r, cases[c].sector, cases[c].wlens, cases[c].nw, src),
		                  VIRTIO_BLK_S_OK);
		disk_bytes(&r, cases[c].sector * 512, disk, total);
		ck_assert_mem_eq(disk, src, total);
		memset(dst, 0, total);
		ck_assert_uint_eq(do_read(&r, cases[c].sector, cases[c].rlens, cases[c].nr, dst),
		                  VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(dst, src, total);
		free(src);
		free(dst);
		free(disk);
	}
	/* Nothing beside the written ranges moved: sector 10 (case 2 wrote 7..9) is zero. */
	{
		uint8_t z[512], zero[512] = { 0 };

		disk_bytes(&r, 10 * 512, z, sizeof(z));
		ck_assert_mem_eq(z, zero, sizeof(z));
	}
	rig_fini(&r);
}
END_TEST

START_TEST(test_flush)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_FLUSH));
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(r.w.flushes, 1);
	r.w.fail = -EIO;
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.flushes, 2);
	rig_fini(&r);
}
END_TEST

START_TEST(test_get_id)
{
	struct rig r;
	struct treq t;
	uint32_t len = VIRTIO_BLK_ID_BYTES, short_len = 4;
	char id[VIRTIO_BLK_ID_BYTES];

	rig_init(&r, false);
	memcpy(r.be.serial, "serial-0123456789abc", VIRTIO_BLK_ID_BYTES);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &t), VIRTIO_BLK_S_OK);
	memcpy(id, gptr(&r.d, t.data[0], sizeof(id)), sizeof(id));
	ck_assert_mem_eq(id, "serial-0123456789abc", VIRTIO_BLK_ID_BYTES);
	/* A shorter buffer gets what fits and not a byte more (the canary check sees to that). */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_ID, 0, &short_len, 1, true, &t),
	                  VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(gptr(&r.d, t.data[0], 4), "seri", 4);
	/* The memory backend's own serial is NUL-padded. */
	ck_assert_mem_eq(r.w.inner.serial, "circ-memory\0\0\0\0\0\0\0\0", VIRTIO_BLK_ID_BYTES);
	rig_fini(&r);
}
END_TEST

static uint8_t discard_req(struct rig *r, uint64_t sector, uint32_t num, uint32_t flags,
                           unsigned nseg, uint32_t seg_bytes)
{
	struct virtio_blk_discard_seg seg[2] = {
		{ htole64(sector), htole32(num), htole32(flags) },
		{ htole64(sector), htole32(num), htole32(flags) },
	};
	uint64_t hdr = galloc(&r->d, 16), segs = galloc(&r->d, sizeof(seg)), st = galloc(&r->d, 1);
	struct tbuf b[3] = {
		{ hdr, 16, false },
		{ segs, nseg * seg_bytes, false },
		{ st, 1, true },
	};
	struct virtq_used_elem e;
	uint16_t before = used_idx(&r->d), head;

	put_hdr(&r->d, hdr, VIRTIO_BLK_T_DISCARD, 0);
	memcpy(gptr(&r->d, segs, sizeof(seg)), seg, sizeof(seg));
	*(uint8_t *)gptr(&r->d, st, 1) = SENTINEL;
	head = add_chain(&r->d, b, 3);
	allow(r, st, 1);
	ck_assert_int_eq(rig_run(r), 1);
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, head);
	ck_assert_uint_eq(e.len, 1);
	return *(uint8_t *)gptr(&r->d, st, 1);
}

START_TEST(test_discard)
{
	struct rig r;
	uint32_t len = 16 * 512;
	uint8_t *src = malloc(len), *got = malloc(len), zero[4096] = { 0 };

	rig_init(&r, false);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_DISCARD));
	fill_random(src, len, 7);
	ck_assert_uint_eq(do_write(&r, 8, &len, 1, src), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(discard_req(&r, 8, 8, 0, 1, 16), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(r.w.discards, 1);
	ck_assert_uint_eq(do_read(&r, 8, &len, 1, got), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(got, zero, 4096);
	ck_assert_mem_eq(got + 4096, src + 4096, 4096);
	/* The unmap flag is what a discard does anyway; other flags are refused. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, VIRTIO_BLK_DISCARD_F_UNMAP, 1, 16),
	                  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(discard_req(&r, 16, 8, 2, 1, 16), VIRTIO_BLK_S_UNSUPP);
	/* max_discard_seg is 1. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, 0, 2, 16), VIRTIO_BLK_S_UNSUPP);
	/* A torn segment, a range past the end, a range too large. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, 0, 1, 8), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, DISK_SECTS - 4, 8, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, UINT64_MAX / 512, 8, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, 0, VIRTIO_BLK_MAX_DISCARD_SECTORS + 1, 0, 1, 16),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.discards, 2);
	free(src);
	free(got);
	rig_fini(&r);
}
END_TEST

START_TEST(test_read_only)
{
	struct rig r;
	uint32_t len = 1024;
	uint8_t src[1024], got[1024], zero[1024] = { 0 };
	struct virtio_blk_config cfg;

	rig_init(&r, true);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_RO));
	ck_assert(!(r.blk.features & (1ull << VIRTIO_BLK_F_DISCARD)));
	fill_random(src, sizeof(src), 3);
	ck_assert_uint_eq(do_write(&r, 4, &len, 1, src), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, 4, 2, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.discards, 0);
	disk_bytes(&r, 4 * 512, got, sizeof(got));
	ck_assert_mem_eq(got, zero, sizeof(got));
	ck_assert_uint_eq(do_read(&r, 4, &len, 1, got), VIRTIO_BLK_S_OK);
	virtio_blk_config_read(&r.blk, 0, &cfg, sizeof(cfg));
	ck_assert_uint_eq(le64toh(cfg.capacity), DISK_SECTS);
	rig_fini(&r);
}
END_TEST

START_TEST(test_out_of_range)
{
	struct rig r;
	struct treq t;
	uint32_t one = 512, two = 1024, odd = 500, odd_split[2] = { 256, 200 };
	uint8_t buf[1024] = { 0 };

	rig_init(&r, false);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS - 1, &one, 1, true, &t),
	                  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS - 1, &two, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	/* Sectors whose byte offset overflows 64 bits. */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, UINT64_MAX, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 1ull << 55, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, DISK_SECTS, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, UINT64_MAX / 512 + 1, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	/* Data lengths that are not whole sectors. */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, &odd, 1, true, &t), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, odd_split, 2, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, 0, &odd, 1, buf), VIRTIO_BLK_S_IOERR);
	/* A backend error is an I/O error. */
	r.w.fail = -EIO;
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, &one, 1, true, &t), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, 0, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	rig_fini(&r);
}
END_TEST

START_TEST(test_unknown_type)
{
	struct rig r;
	struct treq t;
	uint32_t len = 512;
	struct virtio_blk_stats st;

	rig_init(&r, false);
	ck_assert_uint_eq(run_req(&r, 99, 0, &len, 1, true, &t), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, NULL, 0, true, &t),
	                  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_LIFETIME, 0, &len, 1, true, &t),
	                  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, 0xffffffffu, 0, NULL, 0, true, &t), VIRTIO_BLK_S_UNSUPP);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.unsupported, 4);
	ck_assert_uint_eq(st.io_errors, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_stats)
{
	struct rig r;
	struct treq t;
	uint32_t len = 2048;
	uint8_t buf[2048] = { 0 };
	struct virtio_blk_stats st;

	rig_init(&r, false);
	ck_assert_uint_eq(do_write(&r, 0, &len, 1, buf), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(do_read(&r, 0, &len, 1, buf), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(do_read(&r, DISK_SECTS, &len, 1, buf), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.reads, 2);
	ck_assert_uint_eq(st.writes, 1);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert_uint_eq(st.read_bytes, 2048);
	ck_assert_uint_eq(st.written_bytes, 2048);
	ck_assert_uint_eq(st.io_errors, 1);
	ck_assert_uint_eq(st.bad_chains, 0);
	rig_fini(&r);
}
END_TEST

/* Device model: malformed chains. Each completes, with an error or with used length 0. */

/* Runs what the driver published, expecting exactly one completion: head, with used length len. */
static void expect_one(struct rig *r, uint32_t head, uint32_t len)
{
	uint16_t before = used_idx(&r->d);
	struct virtq_used_elem e;

	ck_assert_int_eq(rig_run(r), 1);
	ck_assert_uint_eq(used_idx(&r->d), (uint16_t)(before + 1));
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, head);
	ck_assert_uint_eq(e.len, len);
}

/* header, a 512-byte data buffer at data_gpa (device-writable), status: a read of sector 0. */
static uint64_t read_chain(struct rig *r, uint64_t data_gpa, uint32_t data_len)
{
	uint64_t hdr = galloc(&r->d, 16), st = galloc(&r->d, 1);
	struct tbuf b[3] = {
		{ hdr, 16, false },
		{ data_gpa, data_len, true },
		{ st, 1, true },
	};

	put_hdr(&r->d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r->d, st, 1) = SENTINEL;
	add_chain(&r->d, b, 3);
	return st;
}

START_TEST(test_bad_desc_index)
{
	struct rig r;
	uint64_t hdr;

	rig_init(&r, false);
	/*
	 * The table in RAM's last page: an index past it would be read from
	 * the guard page beyond, and fault, rather than pass unnoticed.
	 */
	r.q.desc = r.d.desc = MEM_SIZE - 16 * QSIZE;
	/* A next pointer past the table. */
	hdr = galloc(&r.d, 16);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	/* A head past the table, straight from the avail ring. */
	publish(&r.d, 1000);
	expect_one(&r, 1000, 0);
	publish(&r.d, 0xffff);
	expect_one(&r, 0xffff, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_loop)
{
	struct rig r;
	uint64_t hdr, data;
	struct virtio_blk_stats st;

	rig_init(&r, false);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	/* 0 -> 1 -> 0 -> ...: the walk must give up, not spin or overrun its array. */
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&r.d, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	publish(&r.d, 0);
	allow(&r, data, 512);
	expect_one(&r, 0, 0);
	/* A descriptor that points at itself. */
	set_desc(&r.d, 5, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	publish(&r.d, 5);
	allow(&r, data, 512);
	expect_one(&r, 5, 0);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.bad_chains, 2);
	ck_assert_uint_eq(st.reads, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_buffer_outside_ram)
{
	static const struct {
		uint64_t gpa;
		uint32_t len;
	} bad[] = {
		{ MEM_SIZE + 4096, 512 },      /* beyond RAM */
		{ MEM_SIZE - 256, 512 },       /* straddles the end */
		{ GUEST_MEM_HOLE_START, 512 }, /* in the PCI hole */
		{ GUEST_MEM_HIGH_START, 512 }, /* where high RAM would be */
		{ UINT64_MAX - 100, 512 },     /* wraps around */
		{ 0, 0xffffffffu },            /* longer than RAM */
	};
	struct rig r;

	rig_init(&r, false);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t st = read_chain(&r, bad[i].gpa, bad[i].len), wlen = bad[i].len + 1ull;

		/* The chain's shape is intact, so the status can be reported. */
		allow(&r, st, 1);
		/* Used length: all writable bytes, capped at 32 bits. */
		expect_one(&r, 0, wlen > UINT32_MAX ? UINT32_MAX : (uint32_t)wlen);
		ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);
	}
	/* The last byte of RAM is a fine place for a status byte. */
	{
		uint64_t hdr = galloc(&r.d, 16), data = galloc(&r.d, 512);
		struct tbuf b[3] = {
			{ hdr, 16, false },
			{ data, 512, true },
			{ MEM_SIZE - 1, 1, true },
		};

		put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
		add_chain(&r.d, b, 3);
		allow(&r, data, 512);
		allow(&r, MEM_SIZE - 1, 1);
		expect_one(&r, 0, 513);
		ck_assert_uint_eq(r.m.host[MEM_SIZE - 1], VIRTIO_BLK_S_OK);
	}
	/* A status buffer outside RAM leaves nowhere to report: used length 0. */
	{
		uint64_t hdr = galloc(&r.d, 16), data = galloc(&r.d, 512);
		struct tbuf b[3] = {
			{ hdr, 16, false },
			{ data, 512, true },
			{ MEM_SIZE, 1, true },
		};

		put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
		add_chain(&r.d, b, 3);
		expect_one(&r, 0, 0);
	}
	rig_fini(&r);
}
END_TEST

START_TEST(test_bad_layout)
{
	struct rig r;
	uint64_t hdr, data, extra, st;
	struct tbuf b[4];

	rig_init(&r, false);
	/* A header shorter than 16 bytes. */
	hdr = galloc(&r.d, 8);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	b[0] = (struct tbuf){ hdr, 8, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 3);
	allow(&r, st, 1);
	expect_one(&r, 0, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);

	/* No status byte at all: only a header. */
	hdr = galloc(&r.d, 16);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_FLUSH, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	add_chain(&r.d, b, 1);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(r.w.flushes, 0);

	/* A zero-length writable buffer is no status byte either. */
	hdr = galloc(&r.d, 16);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_FLUSH, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ st, 0, true };
	add_chain(&r.d, b, 2);
	expect_one(&r, 0, 0);

	/* The status in a device-readable buffer: an OUT whose every buffer is readable. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_OUT, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, false };
	b[2] = (struct tbuf){ st, 1, false };
	add_chain(&r.d, b, 3);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);

	/* A readable buffer after a writable one: the status would be in the readable one. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ st, 1, false };
	add_chain(&r.d, b, 3);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);

	/* Readable, writable, readable, writable: the second readable one must stay as is. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	extra = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ extra, 512, false };
	b[3] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 4);
	allow(&r, data, 512);
	allow(&r, st, 1);
	expect_one(&r, 0, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);

	/* A header that is device-writable: no readable bytes, so no header. */
	hdr = galloc(&r.d, 16);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct tbuf){ hdr, 16, true };
	b[1] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 2);
	allow(&r, hdr, 16);
	allow(&r, st, 1);
	expect_one(&r, 0, 17);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);
	rig_fini(&r);
}
END_TEST

START_TEST(test_indirect_not_negotiated)
{
	struct rig r;
	uint64_t table, hdr, data, st;

	rig_init(&r, false);
	ck_assert(!r.q.indirect);
	table = galloc(&r.d, 3 * 16);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	set_desc(&r.d, 0, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);
	rig_fini(&r);
}
END_TEST

/* With VIRTIO_RING_F_INDIRECT_DESC negotiated: one good table, then bad ones. */
START_TEST(test_indirect)
{
	struct rig r;
	uint64_t table, hdr, data, st;
	uint8_t src[512], got[512];

	rig_init(&r, false);
	r.q.indirect = true;
	fill_random(src, sizeof(src), 11);
	ck_assert_int_eq(r.w.inner.ops->write(r.w.inner.ctx, src, 512, 3 * 512), 0);

	table = galloc(&r.d, 3 * 16);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 3);
	put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	set_desc(&r.d, 7, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 7);
	allow(&r, data, 512);
	allow(&r, st, 1);
	expect_one(&r, 7, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_OK);
	memcpy(got, gptr(&r.d, data, 512), 512);
	ck_assert_mem_eq(got, src, 512);

	/* Each of these must complete without status (the walk cannot find the chain's end). */
	table = MEM_SIZE - 3 * 16; /* reading past the table would fault on the guard page */
	for (int c = 0; c < 6; c++) {
		uint16_t flags = VIRTQ_DESC_F_INDIRECT;
		uint32_t tlen = 3 * 16;
		uint64_t taddr = table;

		put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
		put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
		put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
		*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
		switch (c) {
		case 0: /* nested: a table entry that is itself indirect */
			put_desc(&r.d, table, 1, table, 3 * 16,
			         VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT, 2);
			break;
		case 1: /* a loop inside the table */
			put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
			break;
		case 2: /* a next index past the table's end */
			put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
			break;
		case 3: /* a table length that is not whole descriptors */
			tlen = 40;
			break;
		case 4: /* a table outside RAM */
			taddr = MEM_SIZE - 16;
			break;
		case 5: /* INDIRECT together with NEXT */
			flags |= VIRTQ_DESC_F_NEXT;
			break;
		}
		set_desc(&r.d, 0, taddr, tlen, flags, 1);
		set_desc(&r.d, 1, hdr, 16, 0, 0);
		publish(&r.d, 0);
		allow(&r, data, 512); /* a loop may not get that far, but could */
		expect_one(&r, 0, 0);
		ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);
	}
	/* An empty table. */
	set_desc(&r.d, 0, table, 0, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	/* An indirect descriptor that is not the chain's head. */
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&r.d, 1, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	rig_fini(&r);
}
END_TEST

/* The avail and used indices are free-running 16-bit counters: 65535 -> 0 is nothing special. */
START_TEST(test_index_wrap)
{
	struct rig r;
	struct treq t[6];
	uint32_t len = VIRTIO_BLK_ID_BYTES;
	const uint16_t start = 65533;

	rig_init(&r, false);
	r.q.last_avail_idx = start;
	r.q.used_idx = start;
	r.d.avail_idx = start;
	avail_ring(&r.d)->idx = htole16(start);
	used_ring(&r.d)->idx = htole16(start);
	for (int i = 0; i < 6; i++) {
		blk_req(&r.d, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &t[i]);
		allow(&r, t[i].data[0], len);
		allow(&r, t[i].status, 1);
	}
	ck_assert_uint_eq(r.d.avail_idx, 3);
	ck_assert_int_eq(rig_run(&r), 6);
	ck_assert_uint_eq(used_idx(&r.d), 3);
	for (int i = 0; i < 6; i++) {
		struct virtq_used_elem e = used_elem(&r.d, (uint16_t)(start + i));

		ck_assert_uint_eq(e.id, t[i].head);
		ck_assert_uint_eq(e.len, len + 1);
		ck_assert_uint_eq(status_of(&r.d, &t[i]), VIRTIO_BLK_S_OK);
	}
	ck_assert_uint_eq(r.q.last_avail_idx, 3);
	rig_fini(&r);
}
END_TEST

START_TEST(test_no_interrupt)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	avail_ring(&r.d)->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	ck_assert(!virtq_should_interrupt(&r.q, &r.m));
	avail_ring(&r.d)->flags = 0;
	ck_assert(virtq_should_interrupt(&r.q, &r.m));
	rig_fini(&r);
}
END_TEST

/* Rings the device cannot use stop the queue; nothing is consumed or written. */
START_TEST(test_broken_queue)
{
	struct rig r;
	struct treq t;
	struct virtq_chain *c = malloc(sizeof(*c));
	uint16_t idx;

	rig_init(&r, false);
	/* The avail index more than a ring ahead of the device. */
	avail_ring(&r.d)->idx = htole16(QSIZE + 1);
	ck_assert_int_eq(rig_run(&r), 0);
	ck_assert(r.q.broken);
	ck_assert_uint_eq(used_idx(&r.d), 0);
	ck_assert_int_eq(virtq_pop(&r.q, &r.m, c), -EFAULT);
	virtq_reset(&r.q);
	ck_assert_int_eq(virtq_pop(&r.q, &r.m, c), 0);

	/* Rings outside RAM, misaligned, or of a size no split ring can have. */
	for (int i = 0; i < 6; i++) {
		avail_ring(&r.d)->idx = 0;
		r.d.avail_idx = 0;
		virtq_reset(&r.q);
		r.q.size = QSIZE;
		r.q.desc = DESC_GPA;
		r.q.avail = AVAIL_GPA;
		r.q.used = USED_GPA;
		r.q.ready = true;
		switch (i) {
		case 0:
			r.q.desc = MEM_SIZE - 16;
			break;
		case 1:
			r.q.used = MEM_SIZE - 8;
			break;
		case 2:
			r.q.avail = UINT64_MAX - 1;
			break;
		case 3:
			r.q.used = USED_GPA + 2;
			break;
		case 4:
			r.q.size = 100;
			break;
		case 5:
			r.q.size = 0;
			break;
		}
		blk_req(&r.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t);
		idx = r.q.last_avail_idx;
		ck_assert_int_eq(rig_run(&r), 0);
		ck_assert(r.q.broken);
		ck_assert_uint_eq(r.q.last_avail_idx, idx);
		ck_assert_uint_eq(status_of(&r.d, &t), SENTINEL);
		ck_assert_uint_eq(r.w.flushes, 0);
	}
	free(c);
	rig_fini(&r);
}
END_TEST

/* A queue that is not ready yields nothing, whatever the rings say. */
START_TEST(test_not_ready)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	r.q.ready = false;
	blk_req(&r.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t);
	ck_assert_int_eq(rig_run(&r), 0);
	ck_assert_uint_eq(status_of(&r.d, &t), SENTINEL);
	rig_fini(&r);
}
END_TEST

/* Backends. */

START_TEST(test_file_backend)
{
	char path[PATH_MAX], missing[PATH_MAX];
	struct blk_backend be;
	struct circ_err err;
	uint8_t buf[4096], got[4096], zero[4096] = { 0 };
	struct stat st;
	int fd;

	test_path(path, "disk.img");
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);

	ck_assert_int_eq(blk_backend_open_file(path, false, &be, &err), 0);
	ck_assert_uint_eq(be.size, 1 << 20);
	ck_assert(!be.read_only);
	ck_assert_mem_eq(be.serial, "disk.img", 8);
	fill_random(buf, sizeof(buf), 5);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, sizeof(buf), 8192), 0);
	ck_assert_int_eq(be.ops->flush(be.ctx), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, got, sizeof(got), 8192), 0);
	ck_assert_mem_eq(got, buf, sizeof(buf));
	ck_assert_int_eq(be.ops->discard(be.ctx, 8192, 4096), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, got, sizeof(got), 8192), 0);
	/* Hole punching zeroes where the file system supports it; else discard is a no-op. */
	ck_assert(!memcmp(got, zero, sizeof(got)) || !memcmp(got, buf, sizeof(buf)));
	/* Reading past the end is an error, not zeros from nowhere. */
	ck_assert_int_eq(be.ops->read(be.ctx, got, 512, (1 << 20) - 256), -EIO);
	blk_backend_close(&be);
	blk_backend_close(&be); /* idempotent */

	ck_assert_int_eq(blk_backend_open_file(path, true, &be, &err), 0);
	ck_assert(be.read_only);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, 512, 0), -EROFS);
	ck_assert_int_eq(be.ops->discard(be.ctx, 0, 512), -EROFS);
	ck_assert_int_eq(be.ops->read(be.ctx, got, 512, 0), 0);
	blk_backend_close(&be);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 1 << 20);

	test_path(missing, "missing.img");
	ck_assert_int_eq(blk_backend_open_file(missing, false, &be, &err), -1);
	ck_assert_err_has(&err, "missing.img");
	ck_assert_int_eq(blk_backend_open_file(test_dir(), true, &be, &err), -1);
	ck_assert_err_has(&err, "neither a file nor a block device");
}
END_TEST

START_TEST(test_memory_backend)
{
	struct blk_backend be;
	uint8_t buf[512];

	ck_assert_int_eq(blk_backend_open_memory(0, &be), -EINVAL);
	ck_assert_int_eq(blk_backend_open_memory(1 << 20, &be), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, buf, 512, (1 << 20) - 512), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, buf, 512, (1 << 20) - 256), -EIO);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, 512, UINT64_MAX - 100), -EIO);
	ck_assert_int_eq(be.ops->discard(be.ctx, 1 << 20, 1), -EIO);
	blk_backend_close(&be);
}
END_TEST

/* The transport: PCI discovery, driver initialisation and requests through the BAR. */

struct irq_rec {
	unsigned gsi;
	int level;
	unsigned raises, lowers;
};

static void rec_set(void *ctx, unsigned gsi, bool level)
{
	struct irq_rec *rec = ctx;

	__atomic_store_n(&rec->gsi, gsi, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->level, level, __ATOMIC_RELAXED);
	__atomic_fetch_add(level ? &rec->raises : &rec->lowers, 1, __ATOMIC_RELEASE);
}

struct trig {
	struct guest_mem m;
	struct bus pio, mmio;
	struct pci_bus pb;
	struct blk_backend be;
	struct irq_rec rec;
	struct irq_line line;
	struct virtio_blk_pci *dev;
	struct drv d;
	uint8_t slot;
	uint32_t bar;
	uint32_t common, isr, devcfg, notify, mult;
};

static uint32_t conf_read(struct trig *t, uint8_t slot, unsigned off, unsigned len)
{
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (off & 0xfc);
	uint8_t data[4] = { 0 };

	pci_conf1_io(&t->pb, 0, (uint8_t *)&addr, 4, true);
	pci_conf1_io(&t->pb, 4 + (off & 3), data, len, false);
	return data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
}

static uint64_t mmio_read(struct trig *t, uint32_t off, unsigned len)
{
	uint8_t data[8] = { 0 };
	uint64_t v = 0;

	ck_assert(bus_access(&t->mmio, (uint64_t)t->bar + off, data, len, false));
	for (unsigned i = len; i-- > 0;)
		v = v << 8 | data[i];
	return v;
}

static void mmio_write(struct trig *t, uint32_t off, uint64_t v, unsigned len)
{
	uint8_t data[8];

	for (unsigned i = 0; i < len; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	ck_assert(bus_access(&t->mmio, (uint64_t)t->bar + off, data, len, true));
}

static uint8_t status_reg(struct trig *t)
{
	return (uint8_t)mmio_read(t, t->common + VIRTIO_PCI_COMMON_STATUS, 1);
}

static void set_status_reg(struct trig *t, uint8_t v)
{
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_STATUS, v, 1);
}

/* Finds the device by its IDs and its regions by walking the capability list, as a driver does. */
static void discover(struct trig *t)
{
	bool found = false;
	unsigned seen = 0;

	for (unsigned s = 0; s < PCI_MAX_DEVICES && !found; s++) {
		if (conf_read(t, (uint8_t)s, PCI_VENDOR_ID, 2) != VIRTIO_PCI_VENDOR_ID ||
		    conf_read(t, (uint8_t)s, PCI_DEVICE_ID, 2) != 0x1042)
			continue;
		t->slot = (uint8_t)s;
		found = true;
	}
	ck_assert(found);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_REVISION_ID, 1), 1);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_SUBSYSTEM_VENDOR_ID, 2), VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_ge(conf_read(t, t->slot, PCI_SUBSYSTEM_ID, 2), 0x40);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_CLASS_DEVICE, 2), 0x0180);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_INTERRUPT_PIN, 1), 1);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_INTERRUPT_LINE, 1), 11);
	ck_assert(conf_read(t, t->slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	t->bar = conf_read(t, t->slot, PCI_BAR0, 4);
	ck_assert_uint_eq(t->bar & 0xf, 0); /* 32-bit memory BAR */
	t->bar &= ~0xfu;
	ck_assert_uint_ne(t->bar, 0);
	for (unsigned at = conf_read(t, t->slot, PCI_CAPABILITY_LIST, 1), n = 0; at;
	     at = conf_read(t, t->slot, at + 1, 1)) {
		unsigned type, off, len;

		ck_assert_uint_lt(++n, 48); /* a capability list must end */
		if (conf_read(t, t->slot, at, 1) != VIRTIO_PCI_CAP_ID)
			continue;
		type = conf_read(t, t->slot, at + 3, 1);
		ck_assert_uint_eq(conf_read(t, t->slot, at + 4, 1), 0); /* BAR 0 */
		off = conf_read(t, t->slot, at + 8, 4);
		len = conf_read(t, t->slot, at + 12, 4);
		ck_assert_uint_le((uint64_t)off + len, VIRTIO_PCI_BAR_SIZE);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			ck_assert_uint_ge(len, 0x38);
			t->common = off;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			ck_assert_uint_ge(conf_read(t, t->slot, at + 2, 1), 20);
			t->notify = off;
			t->mult = conf_read(t, t->slot, at + 16, 4);
			ck_assert_uint_ge(len, 2);
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			t->isr = off;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			ck_assert_uint_ge(len, sizeof(struct virtio_blk_config));
			t->devcfg = off;
			break;
		}
		seen |= 1u << type;
	}
	ck_assert_uint_eq(seen & 0x1e, 0x1e);
	ck_assert_uint_eq(t->mult, 4);
}

static void trig_init(struct trig *t)
{
	struct circ_err err;

	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(guest_mem_alloc(&t->m, MEM_SIZE, &err), 0);
	memset(t->m.host, CANARY, t->m.size);
	bus_init(&t->pio);
	bus_init(&t->mmio);
	ck_assert_int_eq(pci_init(&t->pb, &t->pio, &t->mmio), 0);
	ck_assert_int_eq(blk_backend_open_memory(DISK_SIZE, &t->be), 0);
	t->line = (struct irq_line){ .set = rec_set, .ctx = &t->rec, .gsi = 99 };
	ck_assert_int_eq(virtio_blk_pci_create(&t->pb, &t->be, &t->m, &t->line, 11, &t->dev, &err),
	                 0);
	drv_init(&t->d, &t->m);
	memset(gptr(&t->d, AVAIL_GPA, 4), 0, 4);
	memset(gptr(&t->d, USED_GPA, 4), 0, 4);
	discover(t);
}

static void trig_fini(struct trig *t)
{
	virtio_blk_pci_destroy(t->dev);
	pci_destroy(&t->pb);
	bus_destroy(&t->mmio);
	bus_destroy(&t->pio);
	blk_backend_close(&t->be);
	guest_mem_free(&t->m);
}

static uint64_t device_features(struct trig *t)
{
	uint64_t f;

	mmio_write(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	f = mmio_read(t, t->common + VIRTIO_PCI_COMMON_DF, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	return f | mmio_read(t, t->common + VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static void driver_features(struct trig *t, uint64_t f)
{
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GF, (uint32_t)f, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GF, f >> 32, 4);
}

/* Negotiates features and sets queue 0 up with size qsize; returns the status read back. */
static uint8_t driver_init(struct trig *t, uint64_t want, uint16_t qsize, bool driver_ok)
{
	uint64_t offered;
	uint8_t st;

	set_status_reg(t, 0);
	ck_assert_uint_eq(status_reg(t), 0);
	set_status_reg(t, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status_reg(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	offered = device_features(t);
	ck_assert(offered & (1ull << VIRTIO_F_VERSION_1));
	driver_features(t, want);
	set_status_reg(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                      VIRTIO_STATUS_FEATURES_OK);
	st = status_reg(t);
	if (!(st & VIRTIO_STATUS_FEATURES_OK))
		return st;
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, qsize, 2);
	/* 64-bit addresses in two 32-bit halves, as Linux writes them. */
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)t->d.desc, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_DESCHI, t->d.desc >> 32, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)t->d.avail, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILHI, t->d.avail >> 32, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)t->d.used, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_USEDHI, t->d.used >> 32, 4);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), t->d.desc);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2),
	                  VIRTIO_MSI_NO_VECTOR);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2),
	                  VIRTIO_MSI_NO_VECTOR);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2),
	                  qsize && !(qsize & (qsize - 1)) && qsize <= VIRTQ_MAX_SIZE);
	t->d.size = qsize;
	if (driver_ok)
		set_status_reg(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		                      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return status_reg(t);
}

static const uint64_t want_features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_FLUSH |
                                      1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_SEG_MAX;

static void notify_queue(struct trig *t)
{
	mmio_write(t, t->notify + 0 * t->mult, 0, 2);
}

START_TEST(test_pci_init_and_request)
{
	struct trig t;
	struct treq rq;
	uint32_t len = 4096;
	uint8_t src[4096], got[4096];
	uint8_t st;
	uint64_t cap;

	trig_init(&t);
	ck_assert_uint_eq(virtio_pci_notify_addr(&t.dev->vp, 0), t.bar + t.notify);
	ck_assert_uint_eq(virtio_pci_notify_addr(&t.dev->vp, 1), 0);
	st = driver_init(&t, want_features, 128, true);
	ck_assert_uint_eq(st, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), want_features);
	/* The device configuration, in two 32-bit halves and whole. */
	cap = mmio_read(&t, t.devcfg, 4) | mmio_read(&t, t.devcfg + 4, 4) << 32;
	ck_assert_uint_eq(cap, DISK_SECTS);
	ck_assert_uint_eq(mmio_read(&t, t.devcfg, 8), DISK_SECTS);
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 20, 4), 512);                /* blk_size */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 12, 4), VIRTIO_BLK_SEG_MAX); /* seg_max */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 0x800, 4), 0);               /* past the end */

	/* A write, then a read, each notified through the BAR. */
	fill_random(src, sizeof(src), 9);
	blk_req(&t.d, VIRTIO_BLK_T_OUT, 10, &len, 1, false, &rq);
	treq_fill(&t.d, &rq, src);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(t.rec.raises, 1);
	ck_assert_int_eq(t.rec.level, 1);
	ck_assert_uint_eq(t.rec.gsi, 11);
	/* Reading the ISR returns it, clears it and lowers the line. */
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);
	ck_assert_int_eq(t.rec.level, 0);
	ck_assert_uint_eq(t.rec.lowers, 1);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), 0);
	ck_assert_uint_eq(t.rec.lowers, 1);

	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_IN, 10, &len, 1, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 2);
	ck_assert_uint_eq(used_elem(&t.d, 1).len, len + 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	treq_collect(&t.d, &rq, got);
	ck_assert_mem_eq(got, src, sizeof(src));
	ck_assert_uint_eq(t.rec.raises, 2);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);

	/* NO_INTERRUPT: the request completes, and no interrupt is raised. */
	avail_ring(&t.d)->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 3);
	ck_assert_uint_eq(t.rec.raises, 2);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), 0);

	/* Reset: everything back to its power-on value, line low. */
	set_status_reg(&t, 0);
	ck_assert_uint_eq(status_reg(&t), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), 0);
	ck_assert_int_eq(t.rec.level, 0);
	trig_fini(&t);
}
END_TEST

START_TEST(test_pci_refuses_features)
{
	struct trig t;
	uint8_t st;

	trig_init(&t);
	/* A feature the device did not offer (multiqueue). */
	st = driver_init(&t, want_features | 1ull << VIRTIO_BLK_F_MQ, 128, false);
	ck_assert(!(st & VIRTIO_STATUS_FEATURES_OK));
	/* Bit 63, far outside the offer. */
	st = driver_init(&t, want_features | 1ull << 63, 128, false);
	ck_assert(!(st & VIRTIO_STATUS_FEATURES_OK));
	/* A legacy driver, without VERSION_1, on a device that has no legacy interface. */
	st = driver_init(&t, want_features & ~(1ull << VIRTIO_F_VERSION_1), 128, false);
	ck_assert(!(st & VIRTIO_STATUS_FEATURES_OK));
	/* Features in select window 2. */
	set_status_reg(&t, 0);
	set_status_reg(&t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	driver_features(&t, want_features);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GFSELECT, 2, 4);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GF, 1, 4);
	set_status_reg(&t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                       VIRTIO_STATUS_FEATURES_OK);
	ck_assert(!(status_reg(&t) & VIRTIO_STATUS_FEATURES_OK));
	/* After a refusal and a reset, a good offer is accepted, and then features are fixed. */
	st = driver_init(&t, want_features, 128, true);
	ck_assert(st & VIRTIO_STATUS_FEATURES_OK);
	driver_features(&t, want_features | 1ull << VIRTIO_BLK_F_MQ);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), want_features);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_GF, 4),
	                  (uint32_t)want_features);
	/* The device offers F_RO only for a read-only disk, and never MQ. */
	ck_assert(!(device_features(&t) & (1ull << VIRTIO_BLK_F_RO)));
	ck_assert(!(device_features(&t) & (1ull << VIRTIO_BLK_F_MQ)));
	trig_fini(&t);
}
END_TEST

START_TEST(test_pci_queue_rules)
{
	struct trig t;
	struct treq rq;

	trig_init(&t);
	/* A queue size that is not a power of two cannot be enabled. */
	ck_assert_uint_eq(driver_init(&t, want_features, 100, false) & VIRTIO_STATUS_FEATURES_OK,
	                  VIRTIO_STATUS_FEATURES_OK);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* Nor one larger than the device's. */
	driver_init(&t, want_features, 512, false);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* A queue that does not exist reads size 0 and ignores set-up. */
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_SELECT, 5, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	mmio_write(&t, t.notify + 5 * t.mult, 5, 2); /* notifying it does nothing */

	/* Before DRIVER_OK nothing is processed; once it is set, the next notify is. */
	driver_init(&t, want_features, 64, false);
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 0);
	ck_assert_uint_eq(status_of(&t.d, &rq), SENTINEL);
	/* An enabled queue's set-up is fixed. */
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 32, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	set_status_reg(&t, status_reg(&t) | VIRTIO_STATUS_DRIVER_OK);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	/* Odd accesses: bytes of a 16-bit register, reads of nothing, read-only fields. */
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 1), 1);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ + 1, 1), 0);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 7, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	ck_assert_uint_eq(mmio_read(&t, t.common + 0x100, 4), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_LEN - 2, 4), 0);
	mmio_write(&t, t.devcfg, 0x12345678, 4); /* read-only configuration */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg, 8), DISK_SECTS);
	trig_fini(&t);
}
END_TEST

/* Rings outside RAM: the device asks for a reset (NEEDS_RESET and a configuration interrupt). */
START_TEST(test_pci_needs_reset)
{
	struct trig t;

	trig_init(&t);
	t.d.desc = MEM_SIZE + 4096;
	driver_init(&t, want_features, 64, true);
	t.d.desc = DESC_GPA;
	publish(&t.d, 0);
	notify_queue(&t);
	ck_assert(status_reg(&t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_CONFIG);
	/* The driver cannot clear the bit, only a reset can. */
	set_status_reg(&t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	ck_assert(status_reg(&t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	set_status_reg(&t, 0);
	ck_assert_uint_eq(status_reg(&t), 0);
	trig_fini(&t);
}
END_TEST

static bool wait_raises(struct irq_rec *rec, unsigned n)
{
	for (int i = 0; i < 5000; i++) {
		struct timespec ts = { 0, 1000000 };

		if (__atomic_load_n(&rec->raises, __ATOMIC_ACQUIRE) >= n)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* The KVM path: notifications arrive on an eventfd and a worker thread completes them. */
START_TEST(test_pci_worker)
{
	struct trig t;
	struct treq rq;
	struct circ_err err;
	uint32_t len = 512;
	uint64_t one = 1;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(efd, 0);
	trig_init(&t);
	ck_assert_int_eq(virtio_blk_pci_start_worker(t.dev, efd, &err), 0);
	ck_assert_int_eq(virtio_blk_pci_start_worker(t.dev, efd, &err), -1);
	driver_init(&t, want_features, 128, true);

	/* As KVM's ioeventfd would: the eventfd is signalled, no MMIO exit at all. */
	blk_req(&t.d, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &rq);
	ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
	ck_assert(wait_raises(&t.rec, 1));
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);

	/* A notify that does reach the BAR is passed to the worker. */
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert(wait_raises(&t.rec, 2));
	ck_assert_uint_eq(used_idx(&t.d), 2);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	trig_fini(&t);
	close(efd);
}
END_TEST

Suite *virtio_suite(void)
{
	Suite *s = suite_create("virtio");
	TCase *blk = tcase_create("virtio-blk");
	TCase *bad = tcase_create("malformed");
	TCase *be = tcase_create("backend");
	TCase *pci = tcase_create("virtio-pci");

	tcase_set_timeout(blk, 30);
	tcase_add_test(blk, test_rw_roundtrip);
	tcase_add_test(blk, test_flush);
	tcase_add_test(blk, test_get_id);
	tcase_add_test(blk, test_discard);
	tcase_add_test(blk, test_read_only);
	tcase_add_test(blk, test_out_of_range);
	tcase_add_test(blk, test_unknown_type);
	tcase_add_test(blk, test_stats);
	tcase_add_test(blk, test_index_wrap);
	tcase_add_test(blk, test_no_interrupt);
	tcase_add_test(blk, test_not_ready);
	suite_add_tcase(s, blk);

	tcase_set_timeout(bad, 30);
	tcase_add_test(bad, test_bad_desc_index);
	tcase_add_test(bad, test_loop);
	tcase_add_test(bad, test_buffer_outside_ram);
	tcase_add_test(bad, test_bad_layout);
	tcase_add_test(bad, test_indirect_not_negotiated);
	tcase_add_test(bad, test_indirect);
	tcase_add_test(bad, test_broken_queue);
	suite_add_tcase(s, bad);

	tcase_add_scratch(be);
	tcase_add_test(be, test_file_backend);
	tcase_add_test(be, test_memory_backend);
	suite_add_tcase(s, be);

	tcase_set_timeout(pci, 30);
	tcase_add_test(pci, test_pci_init_and_request);
	tcase_add_test(pci, test_pci_refuses_features);
	tcase_add_test(pci, test_pci_queue_rules);
	tcase_add_test(pci, test_pci_needs_reset);
	tcase_add_test(pci, test_pci_worker);
	suite_add_tcase(s, pci);
	return s;
}
