/* SPDX-License-Identifier: MIT */
/*
 * The modern virtio-pci transport (virtio 1.x, section 4.1), non-transitional:
 * PCI device ID 0x1040 + the virtio device type, revision 1, no legacy I/O
 * BAR. One 32-bit MMIO BAR holds four regions that vendor-specific PCI
 * capabilities point the driver to:
 *
 *   BAR0 + 0x0000  common configuration (features, status, queue set-up)
 *   BAR0 + 0x1000  ISR status (read to acknowledge the INTx interrupt)
 *   BAR0 + 0x2000  device-specific configuration
 *   BAR0 + 0x3000  queue notify, 4 bytes per queue
 *
 * Interrupts are INTx only (no MSI-X capability): a completion sets ISR bit 0
 * and raises the line; the guest's ISR read clears both.
 *
 * Notifications: without more set-up, the guest's write to a notify register
 * exits to the VMM, reaches the BAR's bus_io_fn, and the queue is processed
 * right there on the vCPU thread (the unit tests use this path). A VMM with
 * KVM attaches an eventfd to virtio_pci_notify_addr() with KVM_IOEVENTFD and
 * hands it to virtio_pci_start_worker(): the notification then never leaves
 * the kernel, and the device's worker thread does the I/O and raises the
 * interrupt.
 */
#ifndef CIRC_HV_VIRTIO_PCI_H
#define CIRC_HV_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The capabilities, common configuration offsets, status bits and feature
 * bits of the virtio 1.x spec, as Linux's uapi spells them.
 */
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "util/err.h"
#include "hv/evloop.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/pci.h"
#include "hv/virtq.h"

#define VIRTIO_PCI_VENDOR_ID       0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE  0x1040 /* + virtio device type */
#define VIRTIO_PCI_SUBSYSTEM_ID    0x1100 /* >= 0x40 as non-transitional devices should have */
#define VIRTIO_PCI_BAR             0
#define VIRTIO_PCI_BAR_SIZE        0x4000
#define VIRTIO_PCI_COMMON_OFF      0x0000
#define VIRTIO_PCI_COMMON_LEN      0x38 /* struct virtio_pci_common_cfg of virtio 1.1 */
#define VIRTIO_PCI_ISR_OFF         0x1000
#define VIRTIO_PCI_ISR_LEN         1
#define VIRTIO_PCI_DEVICE_OFF      0x2000
#define VIRTIO_PCI_DEVICE_MAXLEN   0x1000
#define VIRTIO_PCI_NOTIFY_OFF      0x3000
#define VIRTIO_PCI_NOTIFY_MULT     4
#define VIRTIO_PCI_MAX_QUEUES      8
#define VIRTIO_PCI_MAX_WATCHES     2 /* a device's own descriptors on its worker */
#define VIRTIO_PCI_CAP_SIZE        sizeof(struct virtio_pci_cap)
#define VIRTIO_PCI_NOTIFY_CAP_SIZE sizeof(struct virtio_pci_notify_cap)

#define VIRTIO_PCI_ISR_QUEUE 1

/*
 * What a device model gives the transport. Callbacks run with the
 * transport's lock held, so they never race each other, a reset, or queue
 * set-up; they must not call back into the transport's locked entry points
 * (virtio_pci_queue, virtio_pci_raise and virtio_pci_mem are fine).
 */
struct virtio_device_ops {
	const char *name;     /* for the buses' listings */
	uint16_t device_type; /* virtio device ID: 2 for block */
	uint32_t pci_class;   /* class code << 8 | prog-if, e.g. 0x018000 */
	uint64_t features;    /* offered; VIRTIO_F_VERSION_1 must be among them */
	uint16_t num_queues;  /* <= VIRTIO_PCI_MAX_QUEUES */
	uint16_t queue_max;   /* largest queue size, a power of two <= VIRTQ_MAX_SIZE */
	uint32_t config_len;  /* bytes of device configuration, <= VIRTIO_PCI_DEVICE_MAXLEN */
	/* [off, off + len) lies within config_len. */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data, uint32_t len);
	/* Queue q is enabled and the driver is running: process what it made available. */
	void (*queue_notify)(void *dev, unsigned q);
	/* The driver reset the device; the transport has already reset the queues. */
	void (*reset)(void *dev);
};

struct virtio_pci {
	struct pci_dev pci; /* on the PCI bus once registered; opaque points back here */
	struct virtio_device_ops ops;
	void *dev;
	const struct guest_mem *mem;
	struct irq_line irq;

	pthread_mutex_t lock; /* everything below but isr */
	uint32_t dev_feature_sel, drv_feature_sel;
	uint64_t driver_features;  /* as written by the driver */
	bool driver_features_high; /* the driver wrote a feature bit above 63: refused */
	uint64_t features;         /* negotiated: set when FEATURES_OK was accepted */
	uint8_t status;
	uint16_t queue_sel;
	struct virtq queues[VIRTIO_PCI_MAX_QUEUES];

	/* ISR and the line's level change together, or a level could outlive its ISR bit. */
	pthread_mutex_t isr_lock;
	uint8_t isr;
	uint64_t notifies, interrupts; /* atomic: the guest's notify writes, interrupts raised */

	int notify_fd[VIRTIO_PCI_MAX_QUEUES]; /* the VMM's, -1: inline */
	struct evloop worker;                 /* waits on the notify fds and the watches */
	unsigned n_watches;
	struct evloop_watch watches[VIRTIO_PCI_MAX_WATCHES];
};

/*
 * Fills vp's PCI function (IDs, class, BAR, capabilities) for the device
 * that ops describes. irq is copied; its gsi is set by virtio_pci_register.
 * m and dev must outlive vp. Returns 0 or -EINVAL for ops out of range.
 */
CIRC_MUST_CHECK int virtio_pci_init(struct virtio_pci *vp, const struct virtio_device_ops *ops,
                                    void *dev, const struct guest_mem *m,
                                    const struct irq_line *irq);
/* Puts vp on bus 0 with its INTx line on GSI gsi. Returns 0 or -errno. */
CIRC_MUST_CHECK int virtio_pci_register(struct virtio_pci *vp, struct pci_bus *pb, uint8_t gsi);
/*
 * Starts the worker thread: fds[q] (q < n), an eventfd the VMM attached to
 * virtio_pci_notify_addr(vp, q) with KVM_IOEVENTFD, or -1 to keep that queue
 * inline. Call once, before the guest runs. The fds stay the VMM's, open
 * until virtio_pci_destroy. A notify write that still reaches the BAR (the
 * guest moved it) is passed on to the worker through the same fd.
 */
CIRC_MUST_CHECK int virtio_pci_start_worker(struct virtio_pci *vp, const int *fds, unsigned n,
                                            struct circ_err *err);
/*
 * Has the worker also watch fd (the device's: a network back end's input),
 * calling fn(ctx, fd) on its thread. Before virtio_pci_start_worker.
 */
CIRC_MUST_CHECK int virtio_pci_watch(struct virtio_pci *vp, int fd, evloop_fn fn, void *ctx,
                                     struct circ_err *err);
/* Stops (on false) or resumes the worker's watch on fd, from any thread; no worker: nothing. */
void virtio_pci_watch_enable(struct virtio_pci *vp, int fd, bool on);
/*
 * Processes queue q as a notification of it would, from any thread that
 * does not hold the transport's lock (a watch's handler, a test). False
 * when the driver has q not running, so nothing was done.
 */
bool virtio_pci_kick(struct virtio_pci *vp, unsigned q);
/* The guest's notifications so far (each a write, an exit to KVM) and the interrupts raised. */
void virtio_pci_get_counts(const struct virtio_pci *vp, uint64_t *notifies, uint64_t *interrupts);
/* Stops the worker. The PCI bus has no unregister: destroy vp after the bus is done with. */
void virtio_pci_destroy(struct virtio_pci *vp);

/* The GPA of queue q's notify register, where the BAR is now (0 if q is out of range). */
uint64_t virtio_pci_notify_addr(const struct virtio_pci *vp, unsigned q);

/* For device callbacks: queue q (NULL if out of range) and guest memory. */
struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q);
const struct guest_mem *virtio_pci_mem(const struct virtio_pci *vp);
/* Sets ISR bit 0 and raises the line; callable from any thread. */
void virtio_pci_raise(struct virtio_pci *vp);
/* The driver's accepted features (0 before FEATURES_OK). */
uint64_t virtio_pci_features(const struct virtio_pci *vp);

/* The BAR's decoder (the bus calls it; tests call it directly). */
void virtio_pci_bar_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
