/* SPDX-License-Identifier: MIT */
#include "hv/virtio_pci.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

static uint64_t get_le(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = len; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static int add_cap(struct pci_dev *d, uint8_t type, uint32_t off, uint32_t len)
{
	uint8_t cap[VIRTIO_PCI_NOTIFY_CAP_SIZE] = { 0 };
	uint8_t cap_len =
	    type == VIRTIO_PCI_CAP_NOTIFY_CFG ? VIRTIO_PCI_NOTIFY_CAP_SIZE : VIRTIO_PCI_CAP_SIZE;

	cap[0] = PCI_CAP_ID_VNDR;
	cap[2] = cap_len;
	cap[3] = type;
	cap[4] = VIRTIO_PCI_BAR;
	put_u32le(cap + 8, off);
	put_u32le(cap + 12, len);
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		put_u32le(cap + 16, VIRTIO_PCI_NOTIFY_MULT);
	return pci_add_capability(d, cap, cap_len);
}

static void queues_reset(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
		virtq_reset(&vp->queues[i]);
		/* The driver reads the largest size it may use and may write a smaller one. */
		if (i < vp->ops.num_queues)
			vp->queues[i].size = vp->ops.queue_max;
	}
}

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_device_ops *ops, void *dev,
                    const struct guest_mem *m, const struct irq_line *irq)
{
	struct pci_dev *d = &vp->pci;
	uint16_t qmax = ops->queue_max;
	int rc;

	memset(vp, 0, sizeof(*vp));
	vp->worker = (struct evloop)EVLOOP_NONE; /* none until started */
	if (!ops->num_queues || ops->num_queues > VIRTIO_PCI_MAX_QUEUES || !qmax ||
	    qmax > VIRTQ_MAX_SIZE || (qmax & (qmax - 1)) ||
	    ops->config_len > VIRTIO_PCI_DEVICE_MAXLEN ||
	    !(ops->features & (1ull << VIRTIO_F_VERSION_1)) || !ops->queue_notify)
		return -EINVAL;
	vp->ops = *ops;
	vp->dev = dev;
	vp->mem = m;
	if (irq)
		vp->irq = *irq;
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++)
		vp->notify_fd[i] = -1;
	queues_reset(vp);

	pci_cfg_set16(d, PCI_VENDOR_ID, VIRTIO_PCI_VENDOR_ID);
	pci_cfg_set16(d, PCI_DEVICE_ID, (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + ops->device_type));
	/* Revision 1 and a subsystem ID >= 0x40 mark a device with no legacy interface. */
	pci_cfg_set8(d, PCI_REVISION_ID, 1);
	pci_cfg_set8(d, PCI_CLASS_PROG, (uint8_t)ops->pci_class);
	pci_cfg_set16(d, PCI_CLASS_DEVICE, (uint16_t)(ops->pci_class >> 8));
	pci_cfg_set8(d, PCI_HEADER_TYPE, 0);
	pci_cfg_set16(d, PCI_SUBSYSTEM_VENDOR_ID, VIRTIO_PCI_VENDOR_ID);
	pci_cfg_set16(d, PCI_SUBSYSTEM_ID, VIRTIO_PCI_SUBSYSTEM_ID);
	d->bar_size[VIRTIO_PCI_BAR] = VIRTIO_PCI_BAR_SIZE;
	d->bar_io[VIRTIO_PCI_BAR] = false;
	d->bar_fn[VIRTIO_PCI_BAR] = virtio_pci_bar_io;
	d->opaque = vp;
	d->name = ops->name ? ops->name : "virtio-pci";

	rc = add_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN);
	if (!rc)
		rc = add_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN);
	if (!rc && ops->config_len)
		rc = add_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, ops->config_len);
	if (!rc)
		rc = add_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
		             (uint32_t)ops->num_queues * VIRTIO_PCI_NOTIFY_MULT);
	if (rc)
		return rc;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->isr_lock, NULL);
	return 0;
}

int virtio_pci_register(struct virtio_pci *vp, struct pci_bus *pb, uint8_t gsi)
{
	vp->irq.gsi = gsi;
	return pci_register(pb, &vp->pci, gsi);
}

uint64_t virtio_pci_notify_addr(const struct virtio_pci *vp, unsigned q)
{
	/* The guest may move the BAR (under the PCI bus's lock); this is a snapshot. */
	uint32_t base = __atomic_load_n(&vp->pci.bar_mapped[VIRTIO_PCI_BAR], __ATOMIC_RELAXED);

	if (q >= vp->ops.num_queues)
		return 0;
	if (!base)
		base = vp->pci.bar_addr[VIRTIO_PCI_BAR];
	return (uint64_t)base + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
}

struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q)
{
	return q < vp->ops.num_queues ? &vp->queues[q] : NULL;
}

const struct guest_mem *virtio_pci_mem(const struct virtio_pci *vp)
{
	return vp->mem;
}

uint64_t virtio_pci_features(const struct virtio_pci *vp)
{
	return vp->features;
}

static void isr_raise(struct virtio_pci *vp, uint8_t bit)
{
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr |= bit;
	irq_set(&vp->irq, true);
	pthread_mutex_unlock(&vp->isr_lock);
}

void virtio_pci_raise(struct virtio_pci *vp)
{
	__atomic_fetch_add(&vp->interrupts, 1, __ATOMIC_RELAXED);
	isr_raise(vp, VIRTIO_PCI_ISR_QUEUE);
}

/* Reading the ISR acknowledges the interrupt: the bits clear and the line drops. */
static uint8_t isr_read(struct virtio_pci *vp)
{
	uint8_t v;

	pthread_mutex_lock(&vp->isr_lock);
	v = vp->isr;
	vp->isr = 0;
	if (v)
		irq_set(&vp->irq, false);
	pthread_mutex_unlock(&vp->isr_lock);
	return v;
}

static void reset_locked(struct virtio_pci *vp)
{
	vp->status = 0;
	vp->dev_feature_sel = 0;
	vp->drv_feature_sel = 0;
	vp->driver_features = 0;
	vp->driver_features_high = false;
	vp->features = 0;
	vp->queue_sel = 0;
	queues_reset(vp);
	pthread_mutex_lock(&vp->isr_lock);
	if (vp->isr)
		irq_set(&vp->irq, false);
	vp->isr = 0;
	pthread_mutex_unlock(&vp->isr_lock);
	if (vp->ops.reset)
		vp->ops.reset(vp->dev);
}

static void set_status(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status;

	if (!v) {
		reset_locked(vp);
		return;
	}
	/* NEEDS_RESET is the device's to set; only a reset clears it, as it clears every bit. */
	v = (uint8_t)((v & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (old & VIRTIO_CONFIG_S_NEEDS_RESET));
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/*
		 * A subset of what was offered, including VERSION_1: this device has
		 * no legacy interface. Otherwise FEATURES_OK stays clear, which the
		 * driver reads back as refusal (3.1.1).
		 */
		if ((vp->driver_features & ~vp->ops.features) || vp->driver_features_high ||
		    !(vp->driver_features & (1ull << VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		else
			vp->features = vp->driver_features;
	}
	vp->status = v;
}

static struct virtq *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_sel < vp->ops.num_queues ? &vp->queues[vp->queue_sel] : NULL;
}

static void enable_queue(struct virtio_pci *vp, struct virtq *q)
{
	/* Split rings index modulo size, so anything but a power of two cannot work. */
	if (!q->size || q->size > vp->ops.queue_max || (q->size & (q->size - 1)))
		return;
	q->indirect = vp->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	q->last_avail_idx = 0;
	q->used_idx = 0;
	q->broken = false;
	q->ready = true;
}

/* The common configuration as the guest reads it, little-endian. */
static void common_snapshot(struct virtio_pci *vp, uint8_t *r)
{
	struct virtq *q = selected_queue(vp);

	memset(r, 0, VIRTIO_PCI_COMMON_LEN);
	put_u32le(r + VIRTIO_PCI_COMMON_DFSELECT, vp->dev_feature_sel);
	if (vp->dev_feature_sel < 2)
		put_u32le(r + VIRTIO_PCI_COMMON_DF,
		          (uint32_t)(vp->ops.features >> (32 * vp->dev_feature_sel)));
	put_u32le(r + VIRTIO_PCI_COMMON_GFSELECT, vp->drv_feature_sel);
	if (vp->drv_feature_sel < 2)
		put_u32le(r + VIRTIO_PCI_COMMON_GF,
		          (uint32_t)(vp->driver_features >> (32 * vp->drv_feature_sel)));
	put_u16le(r + VIRTIO_PCI_COMMON_MSIX, VIRTIO_MSI_NO_VECTOR);
	put_u16le(r + VIRTIO_PCI_COMMON_NUMQ, vp->ops.num_queues);
	r[VIRTIO_PCI_COMMON_STATUS] = vp->status;
	/* The configuration never changes under the driver. */
	r[VIRTIO_PCI_COMMON_CFGGENERATION] = 0;
	put_u16le(r + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_sel);
	if (!q)
		return; /* queue_size 0: no such queue */
	put_u16le(r + VIRTIO_PCI_COMMON_Q_SIZE, q->size);
	put_u16le(r + VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
	put_u16le(r + VIRTIO_PCI_COMMON_Q_ENABLE, q->ready);
	put_u16le(r + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_sel);
	put_u64le(r + VIRTIO_PCI_COMMON_Q_DESCLO, q->desc);
	put_u64le(r + VIRTIO_PCI_COMMON_Q_AVAILLO, q->avail);
	put_u64le(r + VIRTIO_PCI_COMMON_Q_USEDLO, q->used);
}

/* Applies a write to the field at off, whose new little-endian value is v. */
static void common_field_write(struct virtio_pci *vp, unsigned off, uint64_t v)
{
	struct virtq *q = selected_queue(vp);
	/* The driver sets a queue up before enabling it and never changes it after (4.1.4.3.2). */
	bool q_writable = q && !q->ready;
	unsigned shift;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dev_feature_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->drv_feature_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once accepted. */
		if (vp->status & VIRTIO_CONFIG_S_FEATURES_OK)
			break;
		if (vp->drv_feature_sel >= 2) {
			vp->driver_features_high |= v != 0;
			break;
		}
		shift = 32 * vp->drv_feature_sel;
		vp->driver_features = (vp->driver_features & ~(0xffffffffull << shift)) |
		                      (v & 0xffffffffull) << shift;
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		set_status(vp, (uint8_t)v);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_sel = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (q_writable)
			q->size = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Only 1 means anything; a queue is disabled by resetting the device. */
		if (q_writable && v == 1)
			enable_queue(vp, q);
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		if (q_writable)
			q->desc = v;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		if (q_writable)
			q->avail = v;
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		if (q_writable)
			q->used = v;
		break;
	default:
		/* Read-only fields, and the MSI-X vectors of a device without MSI-X. */
		break;
	}
}

static const struct {
	uint8_t off, len;
} common_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4 },  { VIRTIO_PCI_COMMON_DF, 4 },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4 },  { VIRTIO_PCI_COMMON_GF, 4 },
	{ VIRTIO_PCI_COMMON_MSIX, 2 },      { VIRTIO_PCI_COMMON_NUMQ, 2 },
	{ VIRTIO_PCI_COMMON_STATUS, 1 },    { VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2 },  { VIRTIO_PCI_COMMON_Q_SIZE, 2 },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2 },    { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2 },    { VIRTIO_PCI_COMMON_Q_DESCLO, 8 },
	{ VIRTIO_PCI_COMMON_Q_AVAILLO, 8 }, { VIRTIO_PCI_COMMON_Q_USEDLO, 8 },
};

/*
 * Any width at any offset: a write is merged into the current register
 * image, then each field it touched takes its merged value. So the two
 * 32-bit halves Linux writes a queue address in, or a byte-wide write into
 * a 16-bit field, do what they would on hardware.
 */
static void common_io(struct virtio_pci *vp, unsigned off, uint8_t *data, uint32_t len, bool write)
{
	uint8_t r[VIRTIO_PCI_COMMON_LEN];

	if (off >= VIRTIO_PCI_COMMON_LEN || len > VIRTIO_PCI_COMMON_LEN - off) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	common_snapshot(vp, r);
	if (!write) {
		memcpy(data, r + off, len);
	} else {
		memcpy(r + off, data, len);
		for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++) {
			unsigned f = common_fields[i].off, flen = common_fields[i].len;

			if (f < off + len && off < f + flen)
				common_field_write(vp, f, get_le(r + f, flen));
		}
	}
	pthread_mutex_unlock(&vp->lock);
}

/* Hands queue q to the device if the driver has it running; whether it did. */
static bool process_queue(struct virtio_pci *vp, unsigned q)
{
	const uint8_t running = VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	bool broke = false, ran = false;

	pthread_mutex_lock(&vp->lock);
	if ((vp->status & running) == running &&
	    !(vp->status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) &&
	    vp->queues[q].ready) {
		ran = true;
		vp->ops.queue_notify(vp->dev, q);
		if (vp->queues[q].broken) {
			/* The rings are unusable: tell the driver to reset the device (2.1.2). */
			vp->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
			broke = true;
		}
	}
	pthread_mutex_unlock(&vp->lock);
	if (broke)
		isr_raise(vp, VIRTIO_PCI_ISR_CONFIG);
	return ran;
}

bool virtio_pci_kick(struct virtio_pci *vp, unsigned q)
{
	return q < vp->ops.num_queues && process_queue(vp, q);
}

void virtio_pci_get_counts(const struct virtio_pci *vp, uint64_t *notifies, uint64_t *interrupts)
{
	*notifies = __atomic_load_n(&vp->notifies, __ATOMIC_RELAXED);
	*interrupts = __atomic_load_n(&vp->interrupts, __ATOMIC_RELAXED);
}

static void notify(struct virtio_pci *vp, unsigned q)
{
	int fd;

	if (q >= vp->ops.num_queues)
		return;
	fd = vp->notify_fd[q];
	if (fd >= 0) {
		uint64_t one = 1;

		/* The worker owns the queue; an eventfd write cannot fail short of overflow. */
		if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return;
	}
	__atomic_fetch_add(&vp->notifies, 1, __ATOMIC_RELAXED);
	process_queue(vp, q);
}

void virtio_pci_bar_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct virtio_pci *vp = opaque;

	if (off < VIRTIO_PCI_ISR_OFF) {
		common_io(vp, (unsigned)(off - VIRTIO_PCI_COMMON_OFF), data, len, write);
	} else if (off < VIRTIO_PCI_DEVICE_OFF) {
		if (write)
			return;
		memset(data, 0, len);
		if (off == VIRTIO_PCI_ISR_OFF)
			data[0] = isr_read(vp);
	} else if (off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
		bool in = o < vp->ops.config_len && len <= vp->ops.config_len - o;

		if (!write)
			memset(data, 0, len);
		if (!in)
			return;
		pthread_mutex_lock(&vp->lock);
		if (!write && vp->ops.config_read)
			vp->ops.config_read(vp->dev, (uint32_t)o, data, len);
		else if (write && vp->ops.config_write)
			vp->ops.config_write(vp->dev, (uint32_t)o, data, len);
		pthread_mutex_unlock(&vp->lock);
	} else {
		uint64_t o = off - VIRTIO_PCI_NOTIFY_OFF;

		if (!write) {
			memset(data, 0, len);
			return;
		}
		/* The register's address names the queue; the value written is not needed. */
		if (o % VIRTIO_PCI_NOTIFY_MULT == 0)
			notify(vp, (unsigned)(o / VIRTIO_PCI_NOTIFY_MULT));
	}
}

/* A queue's notify fd is readable: one pass handles every notification so far. */
static enum evloop_next worker_notified(void *ctx, int fd)
{
	struct virtio_pci *vp = ctx;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0) {
		if (errno != EAGAIN)
			return EVLOOP_FORGET; /* closed under us: stop watching it */
	} else {
		/* Each count is one write of the guest's that KVM turned into a signal. */
		__atomic_fetch_add(&vp->notifies, count, __ATOMIC_RELAXED);
	}
	for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		if (vp->notify_fd[q] == fd)
			process_queue(vp, q);
	return EVLOOP_KEEP;
}

int virtio_pci_watch(struct virtio_pci *vp, int fd, evloop_fn fn, void *ctx, struct circ_err *err)
{
	if (vp->worker.running)
		return err_set(err, EBUSY, "%s: worker already started", vp->pci.name);
	if (vp->n_watches == VIRTIO_PCI_MAX_WATCHES)
		return err_set(err, ENOSPC, "%s: at most %d watches", vp->pci.name,
		               VIRTIO_PCI_MAX_WATCHES);
	vp->watches[vp->n_watches++] = (struct evloop_watch){ fd, fn, ctx };
	return 0;
}

void virtio_pci_watch_enable(struct virtio_pci *vp, int fd, bool on)
{
	if (vp->worker.running)
		evloop_watch_enable(&vp->worker, fd, on);
}

int virtio_pci_start_worker(struct virtio_pci *vp, const int *fds, unsigned n, struct circ_err *err)
{
	bool any = vp->n_watches > 0;

	if (vp->worker.running)
		return err_set(err, EBUSY, "%s: worker already started", vp->pci.name);
	if (n > vp->ops.num_queues)
		return err_set(err, EINVAL, "%s: %u notify fds for %u queues", vp->pci.name, n,
		               vp->ops.num_queues);
	for (unsigned q = 0; q < n; q++)
		any |= fds[q] >= 0;
	if (!any)
		return 0;
	if (evloop_init(&vp->worker, err))
		goto fail;
	for (unsigned q = 0; q < n; q++)
		if (fds[q] >= 0 && evloop_add(&vp->worker, fds[q], worker_notified, vp, err))
			goto fail;
	for (unsigned i = 0; i < vp->n_watches; i++)
		if (evloop_add(&vp->worker, vp->watches[i].fd, vp->watches[i].fn,
		               vp->watches[i].ctx, err))
			goto fail;
	for (unsigned q = 0; q < n; q++)
		vp->notify_fd[q] = fds[q];
	if (evloop_start(&vp->worker, vp->pci.name, err)) {
		for (unsigned q = 0; q < n; q++)
			vp->notify_fd[q] = -1;
		goto fail;
	}
	return 0;
fail:
	evloop_destroy(&vp->worker);
	return err_prefix(err, "%s", vp->pci.name);
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	evloop_destroy(&vp->worker);
	for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		vp->notify_fd[q] = -1;
	pthread_mutex_destroy(&vp->isr_lock);
	pthread_mutex_destroy(&vp->lock);
}
