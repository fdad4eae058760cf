/* SPDX-License-Identifier: MIT */
#include "hv/virtio_net.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/virtio_pci.h"

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio_net_hdr_v1");
_Static_assert(offsetof(struct virtio_net_config, max_virtqueue_pairs) + 2 == VIRTIO_NET_CONFIG_LEN,
               "virtio_net_config layout");

#define BIT(n) (1ull << (n))

void virtio_net_init(struct virtio_net *n, struct net_backend *be, const uint8_t mac[NET_MAC_LEN])
{
	struct virtio_net_config c;

	memset(n, 0, sizeof(*n));
	n->be = be;
	n->features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	              BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS);
	memset(&c, 0, sizeof(c));
	memcpy(c.mac, mac, NET_MAC_LEN);
	c.status = htole16(VIRTIO_NET_S_LINK_UP);
	c.max_virtqueue_pairs = htole16(1);
	memcpy(n->config, &c, VIRTIO_NET_CONFIG_LEN);
}

void virtio_net_config_read(const struct virtio_net *n, uint32_t off, void *data, uint32_t len)
{
	memset(data, 0, len);
	if (off < VIRTIO_NET_CONFIG_LEN)
		memcpy(data, n->config + off,
		       len < VIRTIO_NET_CONFIG_LEN - off ? len : VIRTIO_NET_CONFIG_LEN - off);
}

static void count(uint64_t *counter, uint64_t v)
{
	__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

void virtio_net_get_stats(const struct virtio_net *n, struct virtio_net_stats *out)
{
	const uint64_t *src = (const uint64_t *)&n->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/*
 * The chain's buffers past the header's bytes, as an iovec in n->iov;
 * returns how many pieces (0 when the chain is no longer than the header).
 */
static unsigned chain_payload(struct virtio_net *n, uint64_t *len)
{
	const struct virtq_chain *c = &n->chain;
	uint64_t skip = VIRTIO_NET_HDR_LEN;
	unsigned k = 0;

	*len = 0;
	for (unsigned i = 0; i < c->n; i++) {
		if (skip >= c->bufs[i].len) {
			skip -= c->bufs[i].len;
			continue;
		}
		n->iov[k].iov_base = c->bufs[i].host + skip;
		n->iov[k].iov_len = c->bufs[i].len - skip;
		*len += c->bufs[i].len - skip;
		skip = 0;
		k++;
	}
	return skip ? 0 : k;
}

/* Whether every buffer of the chain goes the one way (device-writable or not). */
static bool chain_all(const struct virtq_chain *c, bool write)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->bufs[i].write != write)
			return false;
	return true;
}

static void tx_one(struct virtio_net *n)
{
	uint64_t len;
	unsigned k;

	if (!chain_all(&n->chain, false)) {
		count(&n->stats.bad_chains, 1);
		return;
	}
	k = chain_payload(n, &len);
	if (!k || len < NET_FRAME_MIN || len > NET_FRAME_MAX) {
		count(&n->stats.tx_dropped, 1);
		return;
	}
	/* The back end reads the frame straight from guest memory. */
	if (n->be->ops->send(n->be->ctx, n->iov, k)) {
		count(&n->stats.backend_errors, 1);
		return;
	}
	count(&n->stats.tx_frames, 1);
	count(&n->stats.tx_bytes, len);
}

int virtio_net_tx_process(struct virtio_net *n, struct virtq *q, const struct guest_mem *m)
{
	int done = 0, rc;

	while ((rc = virtq_pop(q, m, &n->chain)) != 0) {
		if (rc == -EFAULT)
			break;
		if (rc == 1)
			tx_one(n);
		else
			count(&n->stats.bad_chains, 1);
		/* The device writes nothing into a transmit chain. */
		virtq_push(q, m, n->chain.head, 0);
		done++;
	}
	return done;
}

/* The header the device writes before each received frame: no offloads, one buffer. */
static void write_rx_header(struct virtio_net *n)
{
	struct virtio_net_hdr_v1 h;
	struct iovec iov[VIRTQ_CHAIN_MAX];
	unsigned k = 0;

	memset(&h, 0, sizeof(h));
	h.num_buffers = htole16(1);
	for (unsigned i = 0; i < n->chain.n; i++)
		if (n->chain.bufs[i].len)
			iov[k++] = (struct iovec){ n->chain.bufs[i].host, n->chain.bufs[i].len };
	net_iov_scatter(iov, k, (const uint8_t *)&h, sizeof(h));
}

int virtio_net_rx_process(struct virtio_net *n, struct virtq *q, const struct guest_mem *m)
{
	int done = 0;

	n->rx_starved = false;
	for (;;) {
		int rc = virtq_pop(q, m, &n->chain);
		uint64_t room;
		ssize_t got;
		unsigned k;

		if (rc == 0) {
			n->rx_starved = true;
			count(&n->stats.rx_stalls, 1);
			break;
		}
		if (rc == -EFAULT)
			break;
		k = rc == 1 && chain_all(&n->chain, true) ? chain_payload(n, &room) : 0;
		if (!k || room < NET_FRAME_MIN) {
			/* Malformed, readable, or too small for any frame: given back empty. */
			count(&n->stats.bad_chains, 1);
			virtq_push(q, m, n->chain.head, 0);
			done++;
			continue;
		}
		got = n->be->ops->recv(n->be->ctx, n->iov, k);
		if (got == -EMSGSIZE) {
			count(&n->stats.rx_dropped, 1);
			virtq_unpop(q);
			continue;
		}
		if (got <= 0) {
			if (got < 0) {
				count(&n->stats.backend_errors, 1);
				n->rx_failed = (int)-got;
			}
			virtq_unpop(q);
			break;
		}
		write_rx_header(n);
		virtq_push(q, m, n->chain.head, (uint32_t)(VIRTIO_NET_HDR_LEN + (uint64_t)got));
		count(&n->stats.rx_frames, 1);
		count(&n->stats.rx_bytes, (uint64_t)got);
		done++;
	}
	return done;
}

unsigned virtio_net_rx_drop(struct virtio_net *n)
{
	uint8_t sink[2048]; /* a larger frame is dropped all the same (-EMSGSIZE) */
	struct iovec iov = { sink, sizeof(sink) };
	unsigned dropped = 0;
	ssize_t got;

	while ((got = n->be->ops->recv(n->be->ctx, &iov, 1)) > 0 || got == -EMSGSIZE)
		dropped++;
	if (got < 0)
		n->rx_failed = (int)-got;
	count(&n->stats.rx_dropped, dropped);
	return dropped;
}

/* The device behind virtio-pci. */

struct virtio_net_pci {
	struct virtio_pci vp;
	struct virtio_net net;
	bool rx_watching; /* the worker watches the back end's rx_fd (under the transport's lock) */
};

static void net_pci_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net_pci *d = dev;

	virtio_net_config_read(&d->net, off, data, len);
}

/* Input is left in the back end while the guest has no buffer for it. */
static void rx_watch(struct virtio_net_pci *d, bool on)
{
	on = on && !d->net.rx_failed;
	if (d->rx_watching != on) {
		d->rx_watching = on;
		virtio_pci_watch_enable(&d->vp, d->net.be->rx_fd, on);
	}
}

/* Processes queue qi; whether the guest wants an interrupt for what it completed. */
static bool process(struct virtio_net_pci *d, unsigned qi)
{
	struct virtq *q = virtio_pci_queue(&d->vp, qi);
	const struct guest_mem *m = virtio_pci_mem(&d->vp);
	int done;

	if (!q || !q->ready)
		return false;
	if (qi == VIRTIO_NET_TXQ) {
		done = virtio_net_tx_process(&d->net, q, m);
	} else {
		done = virtio_net_rx_process(&d->net, q, m);
		rx_watch(d, !d->net.rx_starved);
	}
	return done > 0 && virtq_should_interrupt(q, m);
}

static void net_pci_queue_notify(void *dev, unsigned qi)
{
	struct virtio_net_pci *d = dev;
	bool raise = process(d, qi);

	/* A reply the back end made at once (slirp's ARP, DHCP) goes in with the same interrupt. */
	if (qi == VIRTIO_NET_TXQ && d->rx_watching)
		raise |= process(d, VIRTIO_NET_RXQ);
	if (raise)
		virtio_pci_raise(&d->vp);
}

static void net_pci_reset(void *dev)
{
	struct virtio_net_pci *d = dev;

	/* Until the driver runs again, input is read and dropped, as by a NIC that is down. */
	rx_watch(d, true);
	d->net.rx_starved = false;
}

/* The back end has input: deliver it, or drop it while the driver is not running. */
static enum evloop_next net_rx_ready(void *ctx, int fd)
{
	struct virtio_net_pci *d = ctx;

	(void)fd;
	if (!virtio_pci_kick(&d->vp, VIRTIO_NET_RXQ))
		virtio_net_rx_drop(&d->net);
	if (d->net.rx_failed) {
		/* A tap whose interface was deleted stays in error: watched, it would spin. */
		fprintf(stderr,
		        "hv: virtio-net: receiving from the %s back end failed (%s): "
		        "the card receives nothing more\n",
		        d->net.be->kind, strerror(d->net.rx_failed));
		return EVLOOP_FORGET;
	}
	return EVLOOP_KEEP;
}

static int model_create(void *arg, struct pci_bus *pb, const struct guest_mem *m,
                        const struct irq_line *irq, uint8_t gsi, struct virtio_pci **vp, void **dev,
                        struct circ_err *err)
{
	const struct virtio_net_args *a = arg;
	struct virtio_device_ops ops = {
		.name = "virtio-net",
		.device_type = VIRTIO_ID_NET,
		.pci_class = 0x020000, /* network, Ethernet */
		.num_queues = 2,
		.queue_max = VIRTQ_MAX_SIZE,
		.config_len = VIRTIO_NET_CONFIG_LEN,
		.config_read = net_pci_config_read,
		.queue_notify = net_pci_queue_notify,
		.reset = net_pci_reset,
	};
	struct virtio_net_pci *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return err_set(err, ENOMEM, "virtio-net: out of memory");
	virtio_net_init(&d->net, a->be, a->mac);
	d->rx_watching = true;
	ops.features = d->net.features;
	rc = virtio_pci_init(&d->vp, &ops, d, m, irq);
	if (rc) {
		free(d);
		return err_sys(err, -rc, "virtio-net: setting up virtio-pci");
	}
	if (virtio_pci_watch(&d->vp, a->be->rx_fd, net_rx_ready, d, err)) {
		virtio_pci_destroy(&d->vp);
		free(d);
		return -1;
	}
	rc = virtio_pci_register(&d->vp, pb, gsi);
	if (rc) {
		virtio_pci_destroy(&d->vp);
		free(d);
		return err_sys(err, -rc, "virtio-net: registering on the PCI bus");
	}
	*vp = &d->vp;
	*dev = d;
	return 0;
}

static void model_destroy(void *dev)
{
	struct virtio_net_pci *d = dev;

	virtio_pci_destroy(&d->vp);
	free(d);
}

static void model_report(void *dev, FILE *f, const char *name)
{
	struct virtio_net_pci *d = dev;
	struct virtio_net_stats st;
	uint64_t notifies, interrupts;

	virtio_net_get_stats(&d->net, &st);
	virtio_pci_get_counts(&d->vp, &notifies, &interrupts);
	fprintf(f,
	        "hv: %s: %s, %llu frames in (%llu bytes), %llu out (%llu bytes), %llu dropped in, "
	        "%llu dropped out, %llu malformed, %llu notifications, %llu interrupts\n",
	        name, d->net.be->kind, (unsigned long long)st.rx_frames,
	        (unsigned long long)st.rx_bytes, (unsigned long long)st.tx_frames,
	        (unsigned long long)st.tx_bytes, (unsigned long long)st.rx_dropped,
	        (unsigned long long)st.tx_dropped, (unsigned long long)st.bad_chains,
	        (unsigned long long)notifies, (unsigned long long)interrupts);
	if (d->net.be->ops->report)
		d->net.be->ops->report(d->net.be->ctx, f, name);
}

const struct virtio_net *virtio_net_model_net(const void *dev)
{
	return &((const struct virtio_net_pci *)dev)->net;
}

const struct hv_device_model virtio_net_model = {
	.kind = "net",
	.create = model_create,
	.destroy = model_destroy,
	.report = model_report,
};
