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

/* Request types, status values, feature bits and the structures, as Linux's uapi spells them. */
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "util/err.h"
#include "hv/blk_backend.h"
#include "hv/device.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/pci.h"
#include "hv/virtio_pci.h"
#include "hv/virtq.h"

#define VIRTIO_BLK_SECTOR 512
/* The configuration the device exposes: through write_zeroes_may_unmap and its padding. */
#define VIRTIO_BLK_CONFIG_LEN 60

/* Not in every uapi's <linux/virtio_blk.h> yet: answered as unsupported. */
#ifndef VIRTIO_BLK_T_GET_LIFETIME
#define VIRTIO_BLK_T_GET_LIFETIME 10
#endif

#define VIRTIO_BLK_SEG_MAX             (VIRTQ_CHAIN_MAX - 2) /* leaves room for header and status */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 21)            /* 1 GiB per request */
#define VIRTIO_BLK_DISCARD_ALIGN       8 /* sectors: 4 KiB, the overlay's granularity */
#define VIRTIO_BLK_PHYS_BLOCK_EXP      3 /* 2^3 sectors per physical block: 4 KiB */

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

/* virtio-blk as the machine attaches it (hv/device.h): arg is the disk's struct blk_backend. */
extern const struct hv_device_model virtio_blk_model;

#endif
