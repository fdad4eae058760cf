/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.x, section 5.2). The device logic works on a virtq
 * and guest memory and knows nothing of PCI, so tests drive it directly;
 * virtio_blk_pci_* at the end put it behind the virtio-pci transport.
 *
 * A request is a chain: the device-readable bytes start with a 16-byte
 * header {le32 type, le32 reserved, le64 sector} followed by data for OUT
 * and DISCARD; the device-writable bytes hold data for IN and GET_ID and end
 * with the status byte. Buffer boundaries do not matter (virtio 1.x has no
 * fixed layout), only the order: readable bytes, then writable ones.
 */
#ifndef CIRC_HV_VIRTIO_BLK_H
#define CIRC_HV_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/blk_backend.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/pci.h"
#include "hv/virtio_pci.h"
#include "hv/virtq.h"

#define VIRTIO_ID_BLOCK   2
#define VIRTIO_BLK_SECTOR 512

/* Feature bits. */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values. */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2

#define VIRTIO_BLK_ID_BYTES            20
#define VIRTIO_BLK_DISCARD_F_UNMAP     1
#define VIRTIO_BLK_SEG_MAX             (VIRTQ_CHAIN_MAX - 2) /* leaves room for header and status */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 21)            /* 1 GiB per request */
#define VIRTIO_BLK_DISCARD_ALIGN       8 /* sectors: 4 KiB, the overlay's granularity */
#define VIRTIO_BLK_PHYS_BLOCK_EXP      3 /* 2^3 sectors per physical block: 4 KiB */

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct virtio_blk_discard_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* The device configuration, little-endian, laid out as in the spec (5.2.4). */
struct virtio_blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
	uint32_t max_secure_erase_sectors;
	uint32_t max_secure_erase_seg;
	uint32_t secure_erase_sector_alignment;
};

/* Counted as requests complete; read them with virtio_blk_get_stats from any thread. */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids, discards, unsupported;
	uint64_t read_bytes, written_bytes;
	uint64_t io_errors;  /* completed with VIRTIO_BLK_S_IOERR */
	uint64_t bad_chains; /* malformed: completed with IOERR, or with used length 0 */
};

struct virtio_blk {
	struct blk_backend *be; /* borrowed */
	uint64_t capacity;      /* sectors */
	uint64_t features;      /* offered */
	struct virtio_blk_config config;
	struct virtio_blk_stats stats;
	struct virtq_chain chain; /* scratch for the request being handled */
};

/* Sets b up over be, which must outlive b. */
void virtio_blk_init(struct virtio_blk *b, struct blk_backend *be);
/* Copies [off, off + len) of the configuration; bytes past its end read as 0. */
void virtio_blk_config_read(const struct virtio_blk *b, uint32_t off, void *data, uint32_t len);
/*
 * Completes every request available on q, each with a status (or used
 * length 0 when a malformed chain has no safe place for one). Returns how
 * many were completed; the caller interrupts the guest if that is nonzero
 * and virtq_should_interrupt says so. q->broken set afterwards means the
 * rings themselves are unusable.
 */
int virtio_blk_process(struct virtio_blk *b, struct virtq *q, const struct guest_mem *m);
void virtio_blk_get_stats(const struct virtio_blk *b, struct virtio_blk_stats *out);

/* The device on virtio-pci. */

struct virtio_blk_pci {
	struct virtio_pci vp;
	struct virtio_blk blk;
};

/*
 * Creates a virtio-blk PCI function over be (borrowed; it must outlive the
 * device) and registers it on pb with INTx on GSI gsi. m: guest memory;
 * irq: the line the VMM backs (copied, its gsi replaced by gsi). Requests
 * are handled on the vCPU thread that notifies, until the VMM calls
 * virtio_blk_pci_start_worker.
 */
CIRC_MUST_CHECK int virtio_blk_pci_create(struct pci_bus *pb, struct blk_backend *be,
                                          const struct guest_mem *m, const struct irq_line *irq,
                                          uint8_t gsi, struct virtio_blk_pci **out,
                                          struct circ_err *err);
/*
 * Hands request processing to a worker thread woken by notify_fd, an
 * eventfd the VMM registered with KVM_IOEVENTFD at
 * virtio_pci_notify_addr(&d->vp, 0) (any length, no datamatch). The fd stays
 * the VMM's. Call once, before the guest runs.
 */
CIRC_MUST_CHECK int virtio_blk_pci_start_worker(struct virtio_blk_pci *d, int notify_fd,
                                                struct circ_err *err);
/* Stops the worker and frees d; after the PCI bus is done with it (it cannot be unregistered). */
void virtio_blk_pci_destroy(struct virtio_blk_pci *d);

#endif
