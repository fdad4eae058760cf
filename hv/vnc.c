/* SPDX-License-Identifier: MIT */
#include "hv/vnc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rfb/rfb.h>

#include "hv/keymap.h"

#define VNC_MAX_FDS 64 /* the listening socket and the clients the loop wakes for */

struct vnc {
	rfbScreenInfoPtr screen;
	const struct fb *fb;
	vnc_dirty_fn dirty;
	void *dirty_ctx;
	struct vnc_input in;
	uint64_t *bitmap;
	size_t words;
	int stop_fd;
	pthread_t thread;
	bool running;
	char *passwords[2]; /* libvncserver's list: the password, then NULL */

	/* The VNC thread's alone, read by vnc_report after it has stopped. */
	unsigned clients;
	uint64_t clients_seen, updates, wakeups;
};

static void client_gone(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	v->clients--;
}

static enum rfbNewClientAction client_new(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	cl->clientGoneHook = client_gone;
	if (!v->clients++ && v->dirty)
		/* The log holds writes from before anyone looked: forget them, send it all. */
		v->dirty(v->dirty_ctx, v->bitmap);
	v->clients_seen++;
	return RFB_CLIENT_ACCEPT;
}

static void update_sent(rfbClientPtr cl, int result)
{
	struct vnc *v = cl->screen->screenData;

	if (result)
		v->updates++;
}

static void on_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	unsigned code = keymap_linux_code(sym);

	if (code)
		v->in.key(v->in.ctx, code, down);
}

static void on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	int wheel = mask & VNC_WHEEL_UP ? 1 : mask & VNC_WHEEL_DOWN ? -1 : 0;

	/* A client may send a position off the screen; the guest's axes end at its edge. */
	x = x < 0 ? 0 : x >= (int)v->fb->width ? (int)v->fb->width - 1 : x;
	y = y < 0 ? 0 : y >= (int)v->fb->height ? (int)v->fb->height - 1 : y;
	v->in.pointer(v->in.ctx, (unsigned)x, (unsigned)y, (unsigned)mask & VNC_BUTTONS, wheel);
}

/* Marks the rows of each run of written pages as modified. */
static void mark_dirty(struct vnc *v)
{
	const struct fb *fb = v->fb;
	uint64_t pages = fb->size / FB_PAGE, p = 0;

	memset(v->bitmap, 0, v->words * sizeof(uint64_t));
	if (!v->dirty || v->dirty(v->dirty_ctx, v->bitmap)) {
		rfbMarkRectAsModified(v->screen, 0, 0, (int)fb->width, (int)fb->height);
		return;
	}
	while (p < pages) {
		uint64_t start, y0, y1;

		if (!(v->bitmap[p / 64] >> (p % 64) & 1)) {
			/* Skip whole clean words at once: most of a still screen. */
			p = v->bitmap[p / 64] >> (p % 64) ? p + 1 : (p / 64 + 1) * 64;
			continue;
		}
		start = p;
		while (p < pages && (v->bitmap[p / 64] >> (p % 64) & 1))
			p++;
		y0 = start * FB_PAGE / fb->stride;
		y1 = (p * FB_PAGE + fb->stride - 1) / fb->stride;
		if (y1 > fb->height)
			y1 = fb->height;
		if (y0 < y1)
			rfbMarkRectAsModified(v->screen, 0, (int)y0, (int)fb->width, (int)y1);
	}
}

static void *vnc_main(void *arg)
{
	struct vnc *v = arg;
	struct pollfd p[VNC_MAX_FDS];

	for (;;) {
		rfbScreenInfoPtr s = v->screen;
		nfds_t n = 0;

		p[n++] = (struct pollfd){ .fd = v->stop_fd, .events = POLLIN };
		/* libvncserver keeps its sockets (listening and clients) in allFds. */
		for (int fd = 0; fd <= s->maxFd && n < VNC_MAX_FDS; fd++)
			if (FD_ISSET(fd, &s->allFds))
				p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(p, n, v->clients ? VNC_FRAME_MS : -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		v->wakeups++;
		if (v->clients)
			mark_dirty(v);
		rfbProcessEvents(s, 0);
	}
	return NULL;
}

static void vnc_free(struct vnc *v)
{
	if (v->screen) {
		rfbShutdownServer(v->screen, TRUE);
		rfbScreenCleanup(v->screen);
	}
	if (v->stop_fd >= 0)
		close(v->stop_fd);
	free(v->bitmap);
	free(v->passwords[0]);
	free(v);
}

int vnc_start(const struct vnc_config *cfg, const struct fb *fb, vnc_dirty_fn dirty,
              void *dirty_ctx, const struct vnc_input *in, struct vnc **out, struct circ_err *err)
{
	struct vnc *v = calloc(1, sizeof(*v));
	struct in_addr addr;
	sigset_t all, old;
	int argc = 0, rc;

	*out = NULL;
	if (!v)
		return err_set(err, ENOMEM, "out of memory");
	v->stop_fd = -1;
	v->fb = fb;
	v->dirty = dirty;
	v->dirty_ctx = dirty_ctx;
	v->in = *in;
	v->words = (fb->size / FB_PAGE + 63) / 64;
	v->bitmap = calloc(v->words, sizeof(uint64_t));
	v->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!v->bitmap || v->stop_fd < 0 ||
	    (cfg->password && !(v->passwords[0] = strdup(cfg->password)))) {
		vnc_free(v);
		return err_set(err, ENOMEM, "vnc: out of memory");
	}
	if (inet_pton(AF_INET, cfg->addr, &addr) != 1 || !cfg->port) {
		vnc_free(v);
		return err_set(err, EINVAL,
		               "vnc: listen on a numeric IPv4 address and a port, not %s:%u",
		               cfg->addr, cfg->port);
	}
	/* libvncserver's log is process-wide; its errors come back here as ours. */
	rfbLogEnable(0);
	v->screen = rfbGetScreen(&argc, NULL, (int)fb->width, (int)fb->height, 8, 3, FB_BPP);
	if (!v->screen) {
		vnc_free(v);
		return err_set(err, ENOMEM, "vnc: out of memory");
	}
	v->screen->screenData = v;
	v->screen->desktopName = "circ";
	v->screen->frameBuffer = (char *)fb->host;
	v->screen->paddedWidthInBytes = (int)fb->stride;
	/* XRGB8888 as the framebuffer holds it: blue in the lowest byte. */
	v->screen->serverFormat.redShift = 16;
	v->screen->serverFormat.greenShift = 8;
	v->screen->serverFormat.blueShift = 0;
	v->screen->port = cfg->port;
	v->screen->ipv6port = 0; /* the IPv4 address given, nothing else */
	v->screen->listenInterface = addr.s_addr;
	v->screen->alwaysShared = TRUE;
	/* No cursor drawn into the pixels: the frame is the guest's as it is, the client's own
	 * shows. */
	v->screen->cursor = NULL;
	v->screen->deferUpdateTime = 0; /* the loop paces updates */
	v->screen->newClientHook = client_new;
	v->screen->displayFinishedHook = update_sent;
	v->screen->kbdAddEvent = on_key;
	v->screen->ptrAddEvent = on_pointer;
	if (v->passwords[0]) {
		v->screen->authPasswdData = v->passwords;
		v->screen->passwordCheck = rfbCheckPasswordByList;
	}
	errno = 0;
	rfbInitServer(v->screen);
	if (v->screen->listenSock == RFB_INVALID_SOCKET) {
		rc = errno ? errno : EADDRINUSE;
		vnc_free(v);
		return err_sys(err, rc, "vnc: cannot listen on %s:%u", cfg->addr, cfg->port);
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&v->thread, NULL, vnc_main, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		vnc_free(v);
		return err_sys(err, rc, "vnc: starting its thread");
	}
	v->running = true;
	*out = v;
	return 0;
}

void vnc_stop(struct vnc *v)
{
	uint64_t one = 1;

	if (!v)
		return;
	if (v->running) {
		if (write(v->stop_fd, &one, sizeof(one)) < 0)
			pthread_cancel(v->thread);
		pthread_join(v->thread, NULL);
	}
	vnc_free(v);
}

void vnc_report(const struct vnc *v, FILE *f)
{
	if (v)
		fprintf(f, "hv: display: %llu updates sent, %llu clients, %llu wake-ups\n",
		        (unsigned long long)v->updates, (unsigned long long)v->clients_seen,
		        (unsigned long long)v->wakeups);
}
