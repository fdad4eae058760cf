/* SPDX-License-Identifier: MIT */
/* The virtio tests' guest driver and device-model rig (see virtio_fixture.h). */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

/* The test's guest driver. */

void drv_init(struct drv *d, struct guest_mem *m)
{
	memset(d, 0, sizeof(*d));
	d->m = m;
	d->desc = DESC_GPA;
	d->avail = AVAIL_GPA;
	d->used = USED_GPA;
	d->size = QSIZE;
	d->heap = HEAP_GPA;
}

void *gptr(struct drv *d, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(d->m, gpa, len);

	ck_assert_ptr_nonnull(p);
	return p;
}

uint64_t galloc(struct drv *d, uint64_t len)
{
	uint64_t at = (d->heap + 63) & ~63ull;

	ck_assert_uint_le(at + len, HEAP_END);
	d->heap = at + len;
	return at;
}

void put_desc(struct drv *d, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
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

void set_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	ck_assert_uint_lt(i, d->size);
	put_desc(d, d->desc, i, addr, len, flags, next);
}

struct virtq_avail *avail_ring(struct drv *d)
{
	return gptr(d, d->avail, 4 + 2ull * d->size);
}

struct virtq_used *used_ring(struct drv *d)
{
	return gptr(d, d->used, 4 + 8ull * d->size);
}

void publish(struct drv *d, uint16_t head)
{
	struct virtq_avail *a = avail_ring(d);

	a->ring[d->avail_idx % d->size] = htole16(head);
	d->avail_idx++;
	__atomic_store_n(&a->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
}

uint16_t add_chain(struct drv *d, const struct tbuf *b, unsigned n)
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

uint16_t used_idx(struct drv *d)
{
	return le16toh(__atomic_load_n(&used_ring(d)->idx, __ATOMIC_ACQUIRE));
}

struct virtq_used_elem used_elem(struct drv *d, uint16_t idx)
{
	struct virtq_used_elem e = used_ring(d)->ring[idx % d->size];

	e.id = le32toh(e.id);
	e.len = le32toh(e.len);
	return e;
}

void put_hdr(struct drv *d, uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {
		.type = htole32(type),
		.sector = htole64(sector),
	};

	memcpy(gptr(d, gpa, sizeof(h)), &h, sizeof(h));
}

void blk_req(struct drv *d, uint32_t type, uint64_t sector, const uint32_t *lens, unsigned nd,
             bool dev_writes, struct treq *t)
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

uint8_t status_of(struct drv *d, const struct treq *t)
{
	return *(uint8_t *)gptr(d, t->status, 1);
}

/* Copies between the host and a request's data buffers, as one stream. */
void treq_fill(struct drv *d, const struct treq *t, const uint8_t *src)
{
	for (unsigned i = 0; i < t->nd; i++) {
		memcpy(gptr(d, t->data[i], t->dlen[i]), src, t->dlen[i]);
		src += t->dlen[i];
	}
}

void treq_collect(struct drv *d, const struct treq *t, uint8_t *dst)
{
	for (unsigned i = 0; i < t->nd; i++) {
		memcpy(dst, gptr(d, t->data[i], t->dlen[i]), t->dlen[i]);
		dst += t->dlen[i];
	}
}

/* A backend that counts and can fail, over the memory backend. */

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

/* The device-model rig. */

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

void rig_init(struct rig *r, bool read_only)
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

void rig_fini(struct rig *r)
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
void allow(struct rig *r, uint64_t gpa, uint64_t len)
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
int rig_run(struct rig *r)
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
