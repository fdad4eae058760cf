/* SPDX-License-Identifier: MIT */
/*
 * A VNC server (libvncserver) that shows a framebuffer as it is, in guest
 * memory, and hands the clients' keys and pointer to the machine. One
 * thread: with no client it sleeps in poll on the listening socket and
 * costs nothing; with clients it asks every VNC_FRAME_MS which pages of
 * the framebuffer changed (KVM's dirty log) and sends those rows.
 *
 * The listening socket is ours, not libvncserver's: libvncserver keeps its
 * sockets in an fd_set, so a descriptor past FD_SETSIZE would abort the
 * process; a connection is taken only while there are fewer than
 * VNC_MAX_CLIENTS and its descriptor fits. WebSocket clients (which
 * libvncserver would take on the same port, from any web page's script)
 * are refused.
 */
#ifndef CIRC_HV_VNC_H
#define CIRC_HV_VNC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "hv/fb.h"

#define VNC_FRAME_MS    10 /* the most a change waits to be sent: 100 updates a second */
#define VNC_MAX_CLIENTS 8
#define VNC_CLIENT_WAIT 500 /* ms a client may take to finish a message: others wait meanwhile */
#define VNC_BUTTONS     7   /* left, middle, right: bits 0 to 2 of the pointer mask */
#define VNC_WHEEL_UP    (1u << 3)
#define VNC_WHEEL_DOWN  (1u << 4)

struct vnc_config {
	const char *addr; /* numeric IPv4 to listen on */
	uint16_t port;
	const char *password; /* NULL: none; VNC's own scheme uses its first 8 characters */
};

/* Where the clients' input goes; called on the VNC thread. */
struct vnc_input {
	void (*key)(void *ctx, unsigned linux_code, bool down);
	/* x, y in pixels; buttons VNC_BUTTONS' bits; wheel +1 up, -1 down, 0 */
	void (*pointer)(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel);
	/* A client left: what it held down is let go (it may have died with a key down). */
	void (*release_all)(void *ctx);
	void *ctx;
};

/*
 * Sets a bit (LSB first in each word) for each FB_PAGE of the framebuffer
 * written since the last call; -1 when it cannot tell (all is redrawn).
 */
typedef int (*vnc_dirty_fn)(void *ctx, uint64_t *bitmap);

struct vnc;

/* Listens and starts the thread. fb must outlive the server; dirty may be NULL. */
CIRC_MUST_CHECK int vnc_start(const struct vnc_config *cfg, const struct fb *fb, vnc_dirty_fn dirty,
                              void *dirty_ctx, const struct vnc_input *in, struct vnc **out,
                              struct circ_err *err);
/* Disconnects every client and stops the thread; NULL or stopped is fine. */
void vnc_stop(struct vnc *v);
/* One line: updates sent, clients so far, wake-ups; after vnc_stop. */
void vnc_report(const struct vnc *v, FILE *f);
/* Stops it if running and frees it; NULL is fine. */
void vnc_free(struct vnc *v);

#endif
