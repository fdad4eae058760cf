/* SPDX-License-Identifier: MIT */
/*
 * The virtio tests' fixture: a guest driver that builds descriptor tables
 * and rings by hand in a fake guest memory, and the device-model rig that
 * runs virtio_blk over them and checks where the device wrote.
 */
#ifndef CIRC_VIRTIO_FIXTURE_H
#define CIRC_VIRTIO_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/blk_backend.h"
#include "hv/guest_mem.h"
#include "hv/virtio_blk.h"
#include "hv/virtq.h"

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

struct tbuf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* A well-formed request: header, data buffers of the given lengths, status. */
struct treq {
	uint64_t hdr, status;
	uint64_t data[8];
	uint32_t dlen[8];
	unsigned nd;
	uint64_t total;
	uint16_t head;
};

void drv_init(struct drv *d, struct guest_mem *m);
void *gptr(struct drv *d, uint64_t gpa, uint64_t len);
uint64_t galloc(struct drv *d, uint64_t len);
void put_desc(struct drv *d, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
              uint16_t flags, uint16_t next);
void set_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next);
struct virtq_avail *avail_ring(struct drv *d);
struct virtq_used *used_ring(struct drv *d);
void publish(struct drv *d, uint16_t head);
uint16_t add_chain(struct drv *d, const struct tbuf *b, unsigned n);
uint16_t used_idx(struct drv *d);
struct virtq_used_elem used_elem(struct drv *d, uint16_t idx);
void put_hdr(struct drv *d, uint64_t gpa, uint32_t type, uint64_t sector);
void blk_req(struct drv *d, uint32_t type, uint64_t sector, const uint32_t *lens, unsigned nd,
             bool dev_writes, struct treq *t);
uint8_t status_of(struct drv *d, const struct treq *t);
/* Copies between the host and a request's data buffers, as one stream. */
void treq_fill(struct drv *d, const struct treq *t, const uint8_t *src);
void treq_collect(struct drv *d, const struct treq *t, uint8_t *dst);

/* A backend that counts and can fail, over the memory backend. */

struct wrap {
	struct blk_backend inner;
	unsigned flushes, discards;
	int fail; /* returned by read, write, flush and discard when nonzero */
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

void rig_init(struct rig *r, bool read_only);
void rig_fini(struct rig *r);
/* Marks [gpa, gpa + len) as a place the device may write in the next run. */
void allow(struct rig *r, uint64_t gpa, uint64_t len);
/* Runs the device over the queue; every byte it changed must be in an allowed range. */
int rig_run(struct rig *r);

#endif
