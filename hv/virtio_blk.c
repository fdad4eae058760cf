/* SPDX-License-Identifier: MIT */
#include "hv/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/*
 * The uapi's struct grows with the kernel headers (secure erase in 6.0,
 * zoned devices in 6.3): the device exposes the fields up to write zeroes,
 * all it offers, whatever the headers' size.
 */
_Static_assert(VIRTIO_BLK_CONFIG_LEN <= sizeof(struct virtio_blk_config), "virtio_blk_config");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56,
               "virtio_blk_config layout");
_Static_assert(offsetof(struct virtio_blk_config, blk_size) == 20, "virtio_blk_config layout");
_Static_assert(offsetof(struct virtio_blk_config, wce) == 32, "virtio_blk_config layout");
_Static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36,
               "virtio_blk_config layout");
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr layout");
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16,
               "virtio_blk_discard_seg layout");

#define VIRTIO_BLK_GATHER_MAX (8u << 20) /* a guest's write gathered into one, at most */
#define BIT(n)                (1ull << (n))

void virtio_blk_init(struct virtio_blk *b, struct blk_backend *be)
{
	struct virtio_blk_config *c = &b->config;

	memset(b, 0, sizeof(*b));
	b->be = be;
	b->capacity = be->size / VIRTIO_BLK_SECTOR;
	b->features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	              BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_BLK_SIZE) |
	              BIT(VIRTIO_BLK_F_TOPOLOGY);
	if (be->ops->flush)
		b->features |= BIT(VIRTIO_BLK_F_FLUSH);
	if (be->read_only)
		b->features |= BIT(VIRTIO_BLK_F_RO);
	else if (be->ops->discard)
		b->features |= BIT(VIRTIO_BLK_F_DISCARD);

	c->capacity = htole64(b->capacity);
	c->seg_max = htole32(VIRTIO_BLK_SEG_MAX);
	c->blk_size = htole32(VIRTIO_BLK_SECTOR);
	/* 4 KiB physical blocks steer the guest's file system to whole overlay blocks. */
	c->physical_block_exp = VIRTIO_BLK_PHYS_BLOCK_EXP;
	c->min_io_size = htole16(1u << VIRTIO_BLK_PHYS_BLOCK_EXP);
	c->num_queues = htole16(1);
	c->max_discard_sectors = htole32(VIRTIO_BLK_MAX_DISCARD_SECTORS);
	c->max_discard_seg = htole32(1);
	c->discard_sector_alignment = htole32(VIRTIO_BLK_DISCARD_ALIGN);
}

void virtio_blk_config_read(const struct virtio_blk *b, uint32_t off, void *data, uint32_t len)
{
	const uint8_t *c = (const uint8_t *)&b->config;
	uint32_t have = VIRTIO_BLK_CONFIG_LEN;

	memset(data, 0, len);
	if (off < have)
		memcpy(data, c + off, len < have - off ? len : have - off);
}

static void count(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

void virtio_blk_get_stats(const struct virtio_blk *b, struct virtio_blk_stats *out)
{
	const uint64_t *src = (const uint64_t *)&b->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/*
 * A request's view of its chain: bufs[0, nr) are device-readable and
 * bufs[nr, n) device-writable (virtq_pop has checked the order), each side
 * a byte stream whose buffer boundaries carry no meaning.
 */
struct req {
	const struct virtq_buf *rd, *wr;
	unsigned nr, nw;
	uint64_t rlen, wlen;
};

static void req_split(const struct virtq_chain *c, struct req *r)
{
	unsigned nr = 0;

	while (nr < c->n && !c->bufs[nr].write)
		nr++;
	r->rd = c->bufs;
	r->nr = nr;
	r->wr = c->bufs + nr;
	r->nw = c->n - nr;
	r->rlen = r->wlen = 0;
	for (unsigned i = 0; i < r->nr; i++)
		r->rlen += r->rd[i].len;
	for (unsigned i = 0; i < r->nw; i++)
		r->wlen += r->wr[i].len;
}

/*
 * Applies fn to each piece of stream bytes [skip, skip + len), in order;
 * disk_off advances with them. Stops at the first error.
 */
typedef int (*piece_fn)(struct virtio_blk *b, uint8_t *p, size_t len, uint64_t disk_off, void *arg);

static int stream_each(struct virtio_blk *b, const struct virtq_buf *bufs, unsigned n,
                       uint64_t skip, uint64_t len, uint64_t disk_off, piece_fn fn, void *arg)
{
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t piece;
		int rc;

		if (skip >= bufs[i].len) {
			skip -= bufs[i].len;
			continue;
		}
		piece = bufs[i].len - skip;
		if (piece > len)
			piece = len;
		rc = fn(b, bufs[i].host + skip, (size_t)piece, disk_off, arg);
		if (rc)
			return rc;
		disk_off += piece;
		len -= piece;
		skip = 0;
	}
	return len ? -EIO : 0;
}

static int piece_read_disk(struct virtio_blk *b, uint8_t *p, size_t len, uint64_t off, void *arg)
{
	(void)arg;
	return b->be->ops->read(b->be->ctx, p, len, off);
}

static int piece_write_disk(struct virtio_blk *b, uint8_t *p, size_t len, uint64_t off, void *arg)
{
	(void)arg;
	return b->be->ops->write(b->be->ctx, p, len, off);
}

/* Copies between guest and host; disk_off counts bytes already copied. */
static int piece_to_host(struct virtio_blk *b, uint8_t *p, size_t len, uint64_t done, void *arg)
{
	(void)b;
	memcpy((uint8_t *)arg + done, p, len);
	return 0;
}

static int piece_from_host(struct virtio_blk *b, uint8_t *p, size_t len, uint64_t done, void *arg)
{
	(void)b;
	memcpy(p, (const uint8_t *)arg + done, len);
	return 0;
}

/* Whether len bytes from sector lie within the disk, without overflow. */
static bool in_range(const struct virtio_blk *b, uint64_t sector, uint64_t len)
{
	if (len % VIRTIO_BLK_SECTOR)
		return false;
	return sector <= b->capacity && len / VIRTIO_BLK_SECTOR <= b->capacity - sector;
}

static uint8_t do_in(struct virtio_blk *b, const struct req *r, uint64_t sector)
{
	uint64_t len = r->wlen - 1; /* all writable bytes but the status */

	if (!in_range(b, sector, len))
		return VIRTIO_BLK_S_IOERR;
	if (stream_each(b, r->wr, r->nw, 0, len, sector * VIRTIO_BLK_SECTOR, piece_read_disk, NULL))
		return VIRTIO_BLK_S_IOERR;
	count(&b->stats.read_bytes, len);
	return VIRTIO_BLK_S_OK;
}

/* The request's data in one host buffer of its own, if it spans several; NULL if one. */
static uint8_t *gather_out(struct virtio_blk *b, const struct req *r, uint64_t len)
{
	uint64_t skip = sizeof(struct virtio_blk_outhdr);
	uint8_t *all;

	for (unsigned i = 0; i < r->nr; i++) {
		if (skip >= r->rd[i].len) {
			skip -= r->rd[i].len;
			continue;
		}
		if (r->rd[i].len - skip >= len)
			return NULL; /* in one piece already */
		break;
	}
	if (len > VIRTIO_BLK_GATHER_MAX)
		return NULL;
	all = malloc(len ? len : 1);
	if (all && stream_each(b, r->rd, r->nr, sizeof(struct virtio_blk_outhdr), len, 0,
	                       piece_to_host, all)) {
		free(all);
		all = NULL;
	}
	return all;
}

/*
 * A write in several pieces is gathered and written at once, so that the
 * disk makes it all or nothing (a circ disk does: vdisk_write); one too
 * large to gather goes piece by piece.
 */
static uint8_t do_out(struct virtio_blk *b, const struct req *r, uint64_t sector)
{
	uint64_t len = r->rlen - sizeof(struct virtio_blk_outhdr);
	uint8_t *all;
	int rc;

	if (b->be->read_only || !in_range(b, sector, len))
		return VIRTIO_BLK_S_IOERR;
	all = gather_out(b, r, len);
	if (all)
		rc = b->be->ops->write(b->be->ctx, all, (size_t)len, sector * VIRTIO_BLK_SECTOR);
	else
		rc = stream_each(b, r->rd, r->nr, sizeof(struct virtio_blk_outhdr), len,
		                 sector * VIRTIO_BLK_SECTOR, piece_write_disk, NULL);
	free(all);
	if (rc)
		return VIRTIO_BLK_S_IOERR;
	count(&b->stats.written_bytes, len);
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_get_id(struct virtio_blk *b, const struct req *r)
{
	uint64_t len = r->wlen - 1;

	/* A shorter buffer gets what fits; the 20 bytes are not NUL-terminated when full. */
	if (len > VIRTIO_BLK_ID_BYTES)
		len = VIRTIO_BLK_ID_BYTES;
	stream_each(b, r->wr, r->nw, 0, len, 0, piece_from_host, b->be->serial);
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_discard(struct virtio_blk *b, const struct req *r)
{
	uint64_t len = r->rlen - sizeof(struct virtio_blk_outhdr);
	struct virtio_blk_discard_write_zeroes seg;
	uint32_t flags;

	if (b->be->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (!b->be->ops->discard)
		return VIRTIO_BLK_S_UNSUPP;
	if (len != sizeof(seg))
		/* max_discard_seg is 1, as QEMU has it; a torn segment is an error either way. */
		return len > sizeof(seg) && len % sizeof(seg) == 0 ? VIRTIO_BLK_S_UNSUPP
		                                                   : VIRTIO_BLK_S_IOERR;
	stream_each(b, r->rd, r->nr, sizeof(struct virtio_blk_outhdr), sizeof(seg), 0,
	            piece_to_host, &seg);
	flags = le32toh(seg.flags);
	/* Unknown flags must be refused (5.2.6.2); UNMAP is what a discard does anyway. */
	if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	if (le32toh(seg.num_sectors) > VIRTIO_BLK_MAX_DISCARD_SECTORS ||
	    !in_range(b, le64toh(seg.sector),
	              (uint64_t)le32toh(seg.num_sectors) * VIRTIO_BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (!seg.num_sectors)
		return VIRTIO_BLK_S_OK;
	if (b->be->ops->discard(b->be->ctx, le64toh(seg.sector) * VIRTIO_BLK_SECTOR,
	                        (uint64_t)le32toh(seg.num_sectors) * VIRTIO_BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

/* The status byte: the last byte of the writable stream, if that is in RAM. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	unsigned i = c->n;

	while (i > 0 && c->bufs[i - 1].len == 0)
		i--;
	if (!i || !c->bufs[i - 1].write || !c->bufs[i - 1].host)
		return NULL;
	return c->bufs[i - 1].host + c->bufs[i - 1].len - 1;
}

static uint32_t used_len(uint64_t wlen)
{
	return wlen > UINT32_MAX ? UINT32_MAX : (uint32_t)wlen;
}

/*
 * A chain virtq_pop refused. If it was walked to its end and ends in a
 * writable byte in RAM, that byte is where the driver looks for the
 * status: say IOERR there. Otherwise nothing is written (used length 0).
 */
static uint32_t complete_malformed(struct virtio_blk *b, const struct virtq_chain *c)
{
	uint8_t *st = c->whole ? status_byte(c) : NULL;
	uint64_t wlen = 0;

	count(&b->stats.bad_chains, 1);
	if (!st)
		return 0;
	*st = VIRTIO_BLK_S_IOERR;
	count(&b->stats.io_errors, 1);
	for (unsigned i = 0; i < c->n; i++)
		if (c->bufs[i].write)
			wlen += c->bufs[i].len;
	return used_len(wlen);
}

/* Handles one well-formed chain; returns the used length. */
static uint32_t handle(struct virtio_blk *b, const struct virtq_chain *c)
{
	struct virtio_blk_outhdr hdr;
	uint8_t *st = status_byte(c);
	struct req r;
	uint8_t status;

	req_split(c, &r);
	if (!st) {
		/* No writable byte at the end: the driver gave the status nowhere to go. */
		count(&b->stats.bad_chains, 1);
		return 0;
	}
	if (r.rlen < sizeof(hdr)) {
		count(&b->stats.bad_chains, 1);
		count(&b->stats.io_errors, 1);
		*st = VIRTIO_BLK_S_IOERR;
		return used_len(r.wlen);
	}
	/* One copy of the header: the guest may change it while we work. */
	stream_each(b, r.rd, r.nr, 0, sizeof(hdr), 0, piece_to_host, &hdr);
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
		count(&b->stats.reads, 1);
		status = do_in(b, &r, le64toh(hdr.sector));
		break;
	case VIRTIO_BLK_T_OUT:
		count(&b->stats.writes, 1);
		status = do_out(b, &r, le64toh(hdr.sector));
		break;
	case VIRTIO_BLK_T_FLUSH:
		count(&b->stats.flushes, 1);
		status = VIRTIO_BLK_S_OK;
		if (b->be->ops->flush && b->be->ops->flush(b->be->ctx))
			status = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		count(&b->stats.get_ids, 1);
		status = do_get_id(b, &r);
		break;
	case VIRTIO_BLK_T_DISCARD:
		count(&b->stats.discards, 1);
		status = do_discard(b, &r);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		count(&b->stats.io_errors, 1);
	else if (status == VIRTIO_BLK_S_UNSUPP)
		count(&b->stats.unsupported, 1);
	*st = status;
	/* As QEMU does: the whole writable length, so the status byte is within it. */
	return used_len(r.wlen);
}

int virtio_blk_process(struct virtio_blk *b, struct virtq *q, const struct guest_mem *m)
{
	int done = 0, rc;

	while ((rc = virtq_pop(q, m, &b->chain)) != 0) {
		uint32_t len;

		if (rc == -EFAULT)
			break;
		len = rc == 1 ? handle(b, &b->chain) : complete_malformed(b, &b->chain);
		virtq_push(q, m, b->chain.head, len);
		done++;
	}
	return done;
}

/* The device behind virtio-pci. */

static void blk_pci_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk_pci *d = dev;

	virtio_blk_config_read(&d->blk, off, data, len);
}

static void blk_pci_queue_notify(void *dev, unsigned qi)
{
	struct virtio_blk_pci *d = dev;
	struct virtq *q = virtio_pci_queue(&d->vp, qi);
	const struct guest_mem *m = virtio_pci_mem(&d->vp);

	if (!q)
		return;
	if (virtio_blk_process(&d->blk, q, m) > 0 && virtq_should_interrupt(q, m))
		virtio_pci_raise(&d->vp);
}

int virtio_blk_pci_create(struct pci_bus *pb, struct blk_backend *be, const struct guest_mem *m,
                          const struct irq_line *irq, uint8_t gsi, struct virtio_blk_pci **out,
                          struct circ_err *err)
{
	struct virtio_device_ops ops = {
		.name = "virtio-blk",
		.device_type = VIRTIO_ID_BLOCK,
		.pci_class = 0x018000, /* mass storage, other */
		.num_queues = 1,
		.queue_max = VIRTQ_MAX_SIZE,
		.config_len = VIRTIO_BLK_CONFIG_LEN,
		.config_read = blk_pci_config_read,
		.queue_notify = blk_pci_queue_notify,
	};
	struct virtio_blk_pci *d;
	int rc;

	*out = NULL;
	if (be->size < VIRTIO_BLK_SECTOR)
		return err_set(err, EINVAL, "virtio-blk: disk of %llu bytes has no whole sector",
		               (unsigned long long)be->size);
	d = calloc(1, sizeof(*d));
	if (!d)
		return err_sys(err, ENOMEM, "virtio-blk: allocating the device");
	virtio_blk_init(&d->blk, be);
	ops.features = d->blk.features;
	rc = virtio_pci_init(&d->vp, &ops, d, m, irq);
	if (rc) {
		free(d);
		return err_sys(err, -rc, "virtio-blk: setting up virtio-pci");
	}
	rc = virtio_pci_register(&d->vp, pb, gsi);
	if (rc) {
		virtio_pci_destroy(&d->vp);
		free(d);
		return err_sys(err, -rc, "virtio-blk: registering on the PCI bus");
	}
	*out = d;
	return 0;
}

int virtio_blk_pci_start_worker(struct virtio_blk_pci *d, int notify_fd, struct circ_err *err)
{
	return virtio_pci_start_worker(&d->vp, &notify_fd, 1, err);
}

void virtio_blk_pci_destroy(struct virtio_blk_pci *d)
{
	if (!d)
		return;
	virtio_pci_destroy(&d->vp);
	free(d);
}

static int model_create(void *arg, struct pci_bus *pb, const struct guest_mem *m,
                        const struct irq_line *irq, uint8_t gsi, struct virtio_pci **vp, void **dev,
                        struct circ_err *err)
{
	struct virtio_blk_pci *d;

	if (virtio_blk_pci_create(pb, arg, m, irq, gsi, &d, err))
		return -1;
	*vp = &d->vp;
	*dev = d;
	return 0;
}

static void model_destroy(void *dev)
{
	virtio_blk_pci_destroy(dev);
}

static void model_report(void *dev, FILE *f, const char *name)
{
	struct virtio_blk_pci *d = dev;
	struct virtio_blk_stats st;

	virtio_blk_get_stats(&d->blk, &st);
	fprintf(f,
	        "hv: %s: %llu reads (%llu bytes), %llu writes (%llu bytes), %llu flushes, %llu "
	        "discards, %llu errors, %llu malformed\n",
	        name, (unsigned long long)st.reads, (unsigned long long)st.read_bytes,
	        (unsigned long long)st.writes, (unsigned long long)st.written_bytes,
	        (unsigned long long)st.flushes, (unsigned long long)st.discards,
	        (unsigned long long)st.io_errors, (unsigned long long)st.bad_chains);
}

const struct hv_device_model virtio_blk_model = {
	.kind = "disk",
	.create = model_create,
	.destroy = model_destroy,
	.report = model_report,
};
