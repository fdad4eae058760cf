/* SPDX-License-Identifier: MIT */
/*
 * virtio-input (virtio 1.x, section 5.8): a keyboard and a tablet (an
 * absolute pointer, so a VNC client's pointer lands where it points), as
 * Linux's virtio_input driver turns into evdev devices. The device
 * describes itself through a selectable configuration (name, IDs, the
 * event types and codes it sends, the tablet's axes); events go to the
 * guest on the event queue, one 8-byte struct virtio_input_event per
 * buffer; what the guest sends on the status queue (LEDs) is taken and
 * ignored.
 *
 * Events come from another thread (the VNC server's): virtio_input_send
 * queues a whole report (ending in EV_SYN) or, when the queue is full,
 * none of it, and the device's worker delivers it.
 */
#ifndef CIRC_HV_VIRTIO_INPUT_H
#define CIRC_HV_VIRTIO_INPUT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/input-event-codes.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_input.h>

#include "util/err.h"
#include "hv/device.h"
#include "hv/guest_mem.h"
#include "hv/virtq.h"

#define VIRTIO_INPUT_EVENTQ     0
#define VIRTIO_INPUT_STATUSQ    1
#define VIRTIO_INPUT_CONFIG_LEN sizeof(struct virtio_input_config) /* 136 */
#define VIRTIO_INPUT_PENDING    256 /* events waiting for the guest's buffers */
#define VIRTIO_INPUT_ABS_MAX    32767

enum virtio_input_kind {
	VIRTIO_INPUT_KEYBOARD,
	VIRTIO_INPUT_TABLET,
};

struct virtio_input_stats {
	uint64_t events;     /* delivered */
	uint64_t dropped;    /* events refused: the queue was full, or the driver not running */
	uint64_t statuses;   /* status-queue buffers taken */
	uint64_t bad_chains; /* malformed, or too small for an event: completed empty */
};

struct virtio_input {
	enum virtio_input_kind kind;
	struct virtio_input_config cfg; /* select and subsel as written; the rest computed */
	struct virtio_input_stats stats;
	struct virtq_chain chain;

	pthread_mutex_t lock; /* the pending events */
	struct virtio_input_event pending[VIRTIO_INPUT_PENDING];
	unsigned head, count;
	int event_fd; /* readable while events are pending */
	bool starved; /* the last pass found no buffer */
};

/* Sets in up as kind; 0 or -errno (no eventfd). virtio_input_destroy frees what it took. */
CIRC_MUST_CHECK int virtio_input_init(struct virtio_input *in, enum virtio_input_kind kind);
void virtio_input_destroy(struct virtio_input *in);
void virtio_input_config_read(struct virtio_input *in, uint32_t off, void *data, uint32_t len);
/* select and subsel: the only fields the driver writes. */
void virtio_input_config_write(struct virtio_input *in, uint32_t off, const void *data,
                               uint32_t len);
/* Queues n events (a report); false, dropping all of them, if they do not fit. Any thread. */
bool virtio_input_send(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n);
/* Delivers pending events into the event queue's buffers; returns the chains completed. */
int virtio_input_process_events(struct virtio_input *in, struct virtq *q,
                                const struct guest_mem *m);
/* Takes the status queue's buffers; returns how many. */
int virtio_input_process_status(struct virtio_input *in, struct virtq *q,
                                const struct guest_mem *m);
/* Drops what is pending (the driver is not running); returns how many events. */
unsigned virtio_input_drop(struct virtio_input *in);
void virtio_input_get_stats(const struct virtio_input *in, struct virtio_input_stats *out);

/* What the machine attaches (hv/device.h): arg is a struct virtio_input_args. */
struct virtio_input_args {
	enum virtio_input_kind kind;
	struct virtio_input **out; /* set to the device, for the display to send to */
};
extern const struct hv_device_model virtio_input_model;

#endif
