/* SPDX-License-Identifier: MIT */
#include "hv/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static uint64_t avail_bytes(uint16_t size)
{
	return offsetof(struct virtq_avail, ring) + 2ull * size;
}

static uint64_t used_bytes(uint16_t size)
{
	return offsetof(struct virtq_used, ring) + sizeof(struct virtq_used_elem) * (uint64_t)size;
}

/*
 * The rings' host addresses, or false if any is outside RAM or misaligned.
 * Alignment matters beyond the spec's say-so: the index fields are accessed
 * atomically, and the host mapping is page-aligned, so an aligned GPA gives
 * an aligned host address. Checked on every use, as the driver can change
 * the addresses only through the transport, but this costs three compares.
 */
static bool rings(const struct virtq *q, const struct guest_mem *m, struct virtq_desc **desc,
                  struct virtq_avail **avail, struct virtq_used **used)
{
	if (!q->size || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return false;
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return false;
	*desc = guest_mem_ptr(m, q->desc, sizeof(struct virtq_desc) * (uint64_t)q->size);
	*avail = guest_mem_ptr(m, q->avail, avail_bytes(q->size));
	*used = guest_mem_ptr(m, q->used, used_bytes(q->size));
	return *desc && *avail && *used;
}

/*
 * One copy of a descriptor the guest may be rewriting as we read it. The
 * fence stops the compiler from reading guest memory again in place of the
 * copy, so every check and every use see the same values.
 */
static void read_desc(const void *src, struct virtq_desc *d)
{
	memcpy(d, src, sizeof(*d));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/*
 * Walks the chain from head. The walk goes on past a buffer outside RAM
 * (recorded with host NULL) so that out->whole can say where the chain
 * ends; it stops at anything that makes the chain's shape unknowable.
 */
static int walk(const struct virtq *q, const struct guest_mem *m, const struct virtq_desc *table,
                uint16_t head, struct virtq_chain *out)
{
	const uint8_t *tab = (const uint8_t *)table;
	unsigned entries = q->size, seen = 0;
	bool bad = false, in_indirect = false, writable_seen = false;
	uint16_t idx = head;

	if (head >= q->size)
		return -EINVAL;
	for (;;) {
		struct virtq_desc d;
		struct virtq_buf *b;

		read_desc(tab + sizeof(d) * idx, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* Only the head may point to a table, which holds the whole chain. */
			if (!q->indirect || in_indirect || seen || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			if (!d.len || d.len % sizeof(d) || d.len / sizeof(d) > VIRTQ_CHAIN_MAX)
				return -EINVAL;
			tab = guest_mem_ptr(m, d.addr, d.len);
			if (!tab)
				return -EINVAL;
			entries = d.len / sizeof(d);
			in_indirect = true;
			idx = 0;
			continue;
		}
		/* More descriptors than the table holds can only be a loop. */
		if (++seen > entries || out->n >= VIRTQ_CHAIN_MAX)
			return -EINVAL;
		b = &out->bufs[out->n++];
		b->len = d.len;
		b->write = d.flags & VIRTQ_DESC_F_WRITE;
		b->host = d.len ? guest_mem_ptr(m, d.addr, d.len) : NULL;
		if (d.len && !b->host)
			bad = true;
		/* Device-readable buffers come first (2.7.4.2): a mix has no one meaning. */
		if (b->write)
			writable_seen = true;
		else if (writable_seen)
			bad = true;
		if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
			out->whole = true;
			return bad ? -EINVAL : 1;
		}
		idx = d.next;
		if (idx >= entries)
			return -EINVAL;
	}
}

int virtq_pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *out)
{
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t avail_idx, pending;

	out->head = 0;
	out->n = 0;
	out->whole = false;
	if (!q->ready)
		return 0;
	if (q->broken)
		return -EFAULT;
	if (!rings(q, m, &desc, &avail, &used)) {
		q->broken = true;
		return -EFAULT;
	}
	/* Acquire: the ring entries and descriptors behind this index are visible once it is. */
	avail_idx = le16toh(__atomic_load_n(&avail->idx, __ATOMIC_ACQUIRE));
	pending = (uint16_t)(avail_idx - q->last_avail_idx);
	if (!pending)
		return 0;
	if (pending > q->size) {
		/* The driver claims more than the ring holds: nothing in it can be trusted. */
		q->broken = true;
		return -EFAULT;
	}
	out->head = le16toh(
	    __atomic_load_n(&avail->ring[q->last_avail_idx & (q->size - 1)], __ATOMIC_RELAXED));
	q->last_avail_idx++;
	return walk(q, m, desc, out->head, out);
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail_idx--;
}

void virtq_push(struct virtq *q, const struct guest_mem *m, uint16_t head, uint32_t len)
{
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	struct virtq_used_elem *e;

	if (!q->ready || q->broken || !rings(q, m, &desc, &avail, &used))
		return;
	e = &used->ring[q->used_idx & (q->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	q->used_idx++;
	/* Release: the element (and the data written to the buffers) before the index. */
	__atomic_store_n(&used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
}

bool virtq_should_interrupt(const struct virtq *q, const struct guest_mem *m)
{
	struct virtq_avail *avail;
	uint16_t flags;

	if (!q->ready || !q->size || (q->avail & 1))
		return false;
	avail = guest_mem_ptr(m, q->avail, avail_bytes(q->size));
	if (!avail)
		return false;
	/*
	 * Store-load ordering: the used index must be visible before the flags
	 * are read, or a driver that just re-enabled interrupts and found no new
	 * used entries would wait for an interrupt that never comes.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = le16toh(__atomic_load_n(&avail->flags, __ATOMIC_RELAXED));
	return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
