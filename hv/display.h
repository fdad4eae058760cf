/* SPDX-License-Identifier: MIT */
/*
 * The machine's screen, keyboard and mouse: the framebuffer (hv/fb.h) in a
 * KVM memory slot of its own with dirty logging, a virtio-input keyboard
 * and tablet, and the VNC server (hv/vnc.h) that shows the one and feeds
 * the others.
 */
#ifndef CIRC_HV_DISPLAY_H
#define CIRC_HV_DISPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "hv/fb.h"
#include "hv/hv.h"
#include "hv/virtio_input.h"
#include "hv/vnc.h"

struct vm;

struct display {
	struct fb fb;
	struct vnc *vnc;
	struct virtio_input *keyboard, *tablet; /* the devices', once attached */
	int vm_fd;
	unsigned slot;
	unsigned buttons, x, y;           /* the pointer's, as last sent */
	uint64_t keys_down[KEY_CNT / 64]; /* as last sent, to let go when a client leaves */
};

/* The framebuffer for cfg (width and height nonzero). */
CIRC_MUST_CHECK int display_init(struct display *d, const struct hv_display *cfg,
                                 struct circ_err *err);
/* Maps the framebuffer into the guest at FB_GPA as memory slot slot, with KVM's dirty log. */
CIRC_MUST_CHECK int display_map(struct display *d, int vm_fd, unsigned slot, struct circ_err *err);
/* Attaches the keyboard and the tablet. */
CIRC_MUST_CHECK int display_attach_input(struct display *d, struct vm *vm, struct circ_err *err);
/* Starts the VNC server; after display_attach_input. */
CIRC_MUST_CHECK int display_start(struct display *d, const struct hv_display *cfg,
                                  struct circ_err *err);
void display_report(const struct display *d, FILE *f);
/* Stops the server's thread (before the devices and the VM go); display_report after it. */
void display_stop(struct display *d);
/* Stops and frees it all, after the VM is gone. */
void display_free(struct display *d);

#endif
