/* SPDX-License-Identifier: MIT */
#include "hv/virtio_input.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hv/virtio_pci.h"

_Static_assert(sizeof(struct virtio_input_config) == 136, "virtio_input_config");
_Static_assert(sizeof(struct virtio_input_event) == 8, "virtio_input_event");

#define BIT(n)        (1ull << (n))
#define VENDOR_ID     0x1af4 /* virtio's */
#define BUS_VIRTUAL   0x06
#define KEYBOARD_KEYS 249 /* KEY_ESC (1) to KEY_MICMUTE (248): every key a keymap may send */

static void count(uint64_t *counter, uint64_t v)
{
	__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static void set_bit(uint8_t *map, unsigned bit)
{
	map[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* Bytes of a bitmap up to its last set bit: what the size field says. */
static uint8_t bitmap_size(const uint8_t *map)
{
	uint8_t n = 128;

	while (n && !map[n - 1])
		n--;
	return n;
}

/* Fills cfg.u and cfg.size for what the driver selected (5.8.5.2). */
static void config_select(struct virtio_input *in)
{
	struct virtio_input_config *c = &in->cfg;
	bool kbd = in->kind == VIRTIO_INPUT_KEYBOARD;

	memset(&c->u, 0, sizeof(c->u));
	c->size = 0;
	switch (c->select) {
	case VIRTIO_INPUT_CFG_ID_NAME: {
		const char *name = kbd ? "circ keyboard" : "circ tablet";

		c->size = (uint8_t)strlen(name);
		memcpy(c->u.string, name, c->size);
		break;
	}
	case VIRTIO_INPUT_CFG_ID_DEVIDS:
		c->u.ids.bustype = htole16(BUS_VIRTUAL);
		c->u.ids.vendor = htole16(VENDOR_ID);
		c->u.ids.product = htole16(kbd ? 1 : 2);
		c->u.ids.version = htole16(1);
		c->size = sizeof(c->u.ids);
		break;
	case VIRTIO_INPUT_CFG_EV_BITS:
		if (c->subsel == EV_KEY && kbd) {
			for (unsigned k = 1; k < KEYBOARD_KEYS; k++)
				set_bit(c->u.bitmap, k);
		} else if (c->subsel == EV_REP && kbd) {
			c->u.bitmap[0] = 1; /* the guest repeats held keys itself */
		} else if (c->subsel == EV_KEY) {
			set_bit(c->u.bitmap, BTN_LEFT);
			set_bit(c->u.bitmap, BTN_RIGHT);
			set_bit(c->u.bitmap, BTN_MIDDLE);
		} else if (c->subsel == EV_ABS && !kbd) {
			set_bit(c->u.bitmap, ABS_X);
			set_bit(c->u.bitmap, ABS_Y);
		} else if (c->subsel == EV_REL && !kbd) {
			set_bit(c->u.bitmap, REL_WHEEL);
		}
		c->size = bitmap_size(c->u.bitmap);
		break;
	case VIRTIO_INPUT_CFG_ABS_INFO:
		if (!kbd && (c->subsel == ABS_X || c->subsel == ABS_Y)) {
			c->u.abs.min = 0;
			c->u.abs.max = htole32(VIRTIO_INPUT_ABS_MAX);
			c->size = sizeof(c->u.abs);
		}
		break;
	default: /* no serial, no properties: size 0 */
		break;
	}
}

int virtio_input_init(struct virtio_input *in, enum virtio_input_kind kind)
{
	memset(in, 0, sizeof(*in));
	in->kind = kind;
	in->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->event_fd < 0)
		return -errno;
	pthread_mutex_init(&in->lock, NULL);
	config_select(in);
	return 0;
}

void virtio_input_destroy(struct virtio_input *in)
{
	if (in->event_fd >= 0) {
		close(in->event_fd);
		pthread_mutex_destroy(&in->lock);
	}
	in->event_fd = -1;
}

void virtio_input_config_read(struct virtio_input *in, uint32_t off, void *data, uint32_t len)
{
	const uint8_t *c = (const uint8_t *)&in->cfg;

	memset(data, 0, len);
	if (off < VIRTIO_INPUT_CONFIG_LEN)
		memcpy(data, c + off,
		       len < VIRTIO_INPUT_CONFIG_LEN - off ? len : VIRTIO_INPUT_CONFIG_LEN - off);
}

void virtio_input_config_write(struct virtio_input *in, uint32_t off, const void *data,
                               uint32_t len)
{
	const uint8_t *d = data;

	for (uint32_t i = 0; i < len; i++) {
		if (off + i == offsetof(struct virtio_input_config, select))
			in->cfg.select = d[i];
		else if (off + i == offsetof(struct virtio_input_config, subsel))
			in->cfg.subsel = d[i];
	}
	config_select(in);
}

bool virtio_input_send(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n)
{
	uint64_t one = 1;
	bool ok;

	pthread_mutex_lock(&in->lock);
	ok = n <= VIRTIO_INPUT_PENDING - in->count;
	if (ok) {
		for (unsigned i = 0; i < n; i++)
			in->pending[(in->head + in->count++) % VIRTIO_INPUT_PENDING] = ev[i];
		if (n && in->count == n)
			CIRC_BEST_EFFORT(write(in->event_fd, &one, sizeof(one)));
	} else {
		count(&in->stats.dropped, n);
	}
	pthread_mutex_unlock(&in->lock);
	return ok;
}

/* The oldest pending event, if any; the event fd goes quiet when the last is taken. */
static bool take(struct virtio_input *in, struct virtio_input_event *ev, bool peek)
{
	bool have;

	pthread_mutex_lock(&in->lock);
	have = in->count > 0;
	if (have) {
		*ev = in->pending[in->head];
		if (!peek) {
			in->head = (in->head + 1) % VIRTIO_INPUT_PENDING;
			if (!--in->count) {
				uint64_t v;

				CIRC_BEST_EFFORT(read(in->event_fd, &v, sizeof(v)));
			}
		}
	}
	pthread_mutex_unlock(&in->lock);
	return have;
}

int virtio_input_process_events(struct virtio_input *in, struct virtq *q, const struct guest_mem *m)
{
	struct virtio_input_event ev;
	int done = 0;

	in->starved = false;
	while (take(in, &ev, true)) {
		int rc = virtq_pop(q, m, &in->chain);
		struct virtq_buf *b = &in->chain.bufs[0];

		if (rc == 0) {
			in->starved = true;
			break;
		}
		if (rc == -EFAULT)
			break;
		if (rc != 1 || !b->write || b->len < sizeof(ev)) {
			/* One writable buffer of 8 bytes at least: Linux's shape, and the spec's.
			 */
			count(&in->stats.bad_chains, 1);
			virtq_push(q, m, in->chain.head, 0);
			done++;
			continue;
		}
		take(in, &ev, false);
		memcpy(b->host, &ev, sizeof(ev));
		virtq_push(q, m, in->chain.head, sizeof(ev));
		count(&in->stats.events, 1);
		done++;
	}
	return done;
}

int virtio_input_process_status(struct virtio_input *in, struct virtq *q, const struct guest_mem *m)
{
	int done = 0, rc;

	while ((rc = virtq_pop(q, m, &in->chain)) != 0) {
		if (rc == -EFAULT)
			break;
		count(rc == 1 ? &in->stats.statuses : &in->stats.bad_chains, 1);
		virtq_push(q, m, in->chain.head, 0);
		done++;
	}
	return done;
}

unsigned virtio_input_drop(struct virtio_input *in)
{
	struct virtio_input_event ev;
	unsigned n = 0;

	while (take(in, &ev, false))
		n++;
	return n;
}

void virtio_input_get_stats(const struct virtio_input *in, struct virtio_input_stats *out)
{
	const uint64_t *src = (const uint64_t *)&in->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* The device behind virtio-pci. */

struct virtio_input_pci {
	struct virtio_pci vp;
	struct virtio_input in;
	bool watching; /* the worker watches event_fd (under the transport's lock) */
};

static void input_pci_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_input_pci *d = dev;

	virtio_input_config_read(&d->in, off, data, len);
}

static void input_pci_config_write(void *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_input_pci *d = dev;

	virtio_input_config_write(&d->in, off, data, len);
}

static void watch(struct virtio_input_pci *d, bool on)
{
	if (d->watching != on) {
		d->watching = on;
		virtio_pci_watch_enable(&d->vp, d->in.event_fd, on);
	}
}

static void input_pci_queue_notify(void *dev, unsigned qi)
{
	struct virtio_input_pci *d = dev;
	struct virtq *q = virtio_pci_queue(&d->vp, qi);
	const struct guest_mem *m = virtio_pci_mem(&d->vp);
	int done;

	if (!q)
		return;
	if (qi == VIRTIO_INPUT_EVENTQ) {
		done = virtio_input_process_events(&d->in, q, m);
		/* Events wait in the queue while the guest has no buffer for them. */
		watch(d, !d->in.starved);
	} else {
		done = virtio_input_process_status(&d->in, q, m);
	}
	if (done > 0 && virtq_should_interrupt(q, m))
		virtio_pci_raise(&d->vp);
}

static void input_pci_reset(void *dev)
{
	struct virtio_input_pci *d = dev;

	watch(d, true);
	d->in.starved = false;
}

static enum evloop_next input_ready(void *ctx, int fd)
{
	struct virtio_input_pci *d = ctx;

	(void)fd;
	if (!virtio_pci_kick(&d->vp, VIRTIO_INPUT_EVENTQ))
		count(&d->in.stats.dropped, virtio_input_drop(&d->in));
	return EVLOOP_KEEP;
}

static int model_create(void *arg, struct pci_bus *pb, const struct guest_mem *m,
                        const struct irq_line *irq, uint8_t gsi, struct virtio_pci **vp, void **dev,
                        struct circ_err *err)
{
	const struct virtio_input_args *a = arg;
	struct virtio_device_ops ops = {
		.name = a->kind == VIRTIO_INPUT_KEYBOARD ? "virtio-keyboard" : "virtio-tablet",
		.device_type = VIRTIO_ID_INPUT,
		.pci_class = 0x098000, /* input device, other */
		.features = BIT(VIRTIO_F_VERSION_1),
		.num_queues = 2,
		.queue_max = 64,
		.config_len = VIRTIO_INPUT_CONFIG_LEN,
		.config_read = input_pci_config_read,
		.config_write = input_pci_config_write,
		.queue_notify = input_pci_queue_notify,
		.reset = input_pci_reset,
	};
	struct virtio_input_pci *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return err_set(err, ENOMEM, "virtio-input: out of memory");
	rc = virtio_input_init(&d->in, a->kind);
	if (rc) {
		free(d);
		return err_sys(err, -rc, "virtio-input: an eventfd");
	}
	d->watching = true;
	rc = virtio_pci_init(&d->vp, &ops, d, m, irq);
	if (rc) {
		virtio_input_destroy(&d->in);
		free(d);
		return err_sys(err, -rc, "virtio-input: setting up virtio-pci");
	}
	if (virtio_pci_watch(&d->vp, d->in.event_fd, input_ready, d, err) ||
	    (rc = virtio_pci_register(&d->vp, pb, gsi))) {
		if (rc)
			err_sys(err, -rc, "virtio-input: registering on the PCI bus");
		virtio_pci_destroy(&d->vp);
		virtio_input_destroy(&d->in);
		free(d);
		return -1;
	}
	if (a->out)
		*a->out = &d->in;
	*vp = &d->vp;
	*dev = d;
	return 0;
}

static void model_destroy(void *dev)
{
	struct virtio_input_pci *d = dev;

	virtio_pci_destroy(&d->vp);
	virtio_input_destroy(&d->in);
	free(d);
}

static void model_report(void *dev, FILE *f, const char *name)
{
	struct virtio_input_pci *d = dev;
	struct virtio_input_stats st;

	virtio_input_get_stats(&d->in, &st);
	fprintf(f, "hv: %s: %s, %llu events, %llu dropped, %llu malformed\n", name,
	        d->in.kind == VIRTIO_INPUT_KEYBOARD ? "keyboard" : "tablet",
	        (unsigned long long)st.events, (unsigned long long)st.dropped,
	        (unsigned long long)st.bad_chains);
}

const struct hv_device_model virtio_input_model = {
	.kind = "input",
	.create = model_create,
	.destroy = model_destroy,
	.report = model_report,
};
