/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.x, section 2.7), the device side. The rings
 * live in guest memory and the guest may write anything into them at any
 * time: every index, length and address is checked, every descriptor is
 * copied out once before it is looked at (no double fetch), and nothing
 * outside guest RAM is ever touched.
 *
 * One thread at a time works a queue (the transport's lock sees to it).
 */
#ifndef CIRC_HV_VIRTQ_H
#define CIRC_HV_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/guest_mem.h"

#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

/* Ring feature bits, offered by the transport on every queue. */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX     29

/* Largest queue a device offers; a chain (direct or indirect) holds at most this many buffers. */
#define VIRTQ_MAX_SIZE  256
#define VIRTQ_CHAIN_MAX VIRTQ_MAX_SIZE

/* The guest's layout, little-endian (used in tests that play the driver). */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* size entries */
};

struct virtq {
	uint16_t size;  /* entries, a power of two; the driver may lower it before enabling */
	bool ready;     /* enabled by the driver */
	bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC was negotiated */
	bool broken;    /* the rings themselves are unusable: stop until reset */
	uint64_t desc;  /* GPA of the descriptor table */
	uint64_t avail; /* GPA of the driver (available) ring */
	uint64_t used;  /* GPA of the device (used) ring */
	uint16_t last_avail_idx;
	uint16_t used_idx; /* kept here, never read back from the guest */
};

struct virtq_buf {
	uint8_t *host; /* NULL: not wholly in guest RAM (only in a malformed chain) */
	uint32_t len;
	bool write; /* device-writable */
};

struct virtq_chain {
	uint16_t head; /* what virtq_push must hand back */
	unsigned n;
	/*
	 * The walk reached the chain's last descriptor: bufs[n - 1] really is
	 * the last buffer, so a status byte there can be located even when
	 * the chain is malformed for another reason.
	 */
	bool whole;
	struct virtq_buf bufs[VIRTQ_CHAIN_MAX];
};

/* Back to the state after device reset: not ready, no rings, indices 0. */
void virtq_reset(struct virtq *q);

/*
 * Takes the next available chain. Returns 1 with *out filled; 0 when the
 * ring is empty or the queue not ready; -EINVAL for a malformed chain: a
 * descriptor index out of range, a loop or a chain longer than the queue
 * (or its indirect table), a buffer not wholly in RAM, a device-readable
 * buffer after a device-writable one, an indirect descriptor that is not
 * negotiated, nested, chained or sized wrongly. The head is consumed even
 * then, and out->head, out->n and out->whole say what could be read, so the
 * caller completes it with an error. -EFAULT when the queue itself is
 * unusable (a ring outside RAM or misaligned, a size that is not a power of
 * two, the avail index more than size ahead): nothing is consumed, the queue
 * is marked broken and every later call returns -EFAULT until reset.
 */
int virtq_pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *out);

/*
 * Gives back the chain the last virtq_pop took, unused: the next pop takes
 * it again (a receive queue's buffer that no frame came for).
 */
void virtq_unpop(struct virtq *q);

/* Writes the used element for head, then (release) the used index. */
void virtq_push(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len);

/* After pushing: whether the driver wants an interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT clear). */
bool virtq_should_interrupt(const struct virtq *q, const struct guest_mem *m);

#endif
