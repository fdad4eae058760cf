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
#include <time.h>
#include <unistd.h>

#include <rfb/rfb.h>

#include "hv/keymap.h"

#define VNC_MAX_FDS    (VNC_MAX_CLIENTS + 2) /* the stop, the listening socket, the clients */
#define VNC_HELLO_SECS 10 /* to get through the handshake (and password), or be dropped */

/* Seconds on the monotonic clock. */
static uintptr_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uintptr_t)ts.tv_sec;
}

struct vnc {
	rfbScreenInfoPtr screen;
	const struct fb *fb;
	vnc_dirty_fn dirty;
	void *dirty_ctx;
	struct vnc_input in;
	uint64_t *bitmap;
	size_t words;
	int stop_fd, listen_fd;
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
	v->in.release_all(v->in.ctx);
}

static enum rfbNewClientAction client_new(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	/*
	 * A browser's script could otherwise watch and type from any web page.
	 * libvncserver 0.9.14 never frees a WebSocket's context: ours to free.
	 */
	if (cl->wsctx) {
		free(cl->wsctx);
		cl->wsctx = NULL;
		return RFB_CLIENT_REFUSE;
	}
	cl->clientGoneHook = client_gone;
	/* When it came: a client still in the handshake VNC_HELLO_SECS later is dropped. */
	cl->clientData = (void *)(uintptr_t)now_s();
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

/*
 * Clients that connected and never got through the handshake hold places
 * that others could use: those older than VNC_HELLO_SECS go.
 */
static void drop_stalled(struct vnc *v)
{
	rfbClientIteratorPtr it = rfbGetClientIterator(v->screen);
	uintptr_t now = now_s();
	rfbClientPtr cl;

	while ((cl = rfbClientIteratorNext(it)))
		if (cl->state != RFB_NORMAL && now - (uintptr_t)cl->clientData > VNC_HELLO_SECS)
			rfbCloseClient(cl);
	rfbReleaseClientIterator(it);
}

/*
 * Connections on our socket: libvncserver's while there is room, else
 * closed; all that wait are taken at once, so a flood drains in one pass.
 */
static void vnc_accept(struct vnc *v)
{
	int fd;

	while ((fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		char head[4];
		ssize_t n;

		/* libvncserver's select() and fd_set take descriptors below FD_SETSIZE only. */
		if (fd >= FD_SETSIZE || v->clients >= VNC_MAX_CLIENTS) {
			close(fd);
			continue;
		}
		/*
		 * A VNC client waits for the server's greeting: one that already
		 * hung up, or sent an HTTP request (a web page's WebSocket), is
		 * not worth libvncserver's 100 ms look at it.
		 */
		n = recv(fd, head, sizeof(head), MSG_PEEK);
		if (n == 0 || (n == (ssize_t)sizeof(head) && !memcmp(head, "GET ", 4))) {
			close(fd);
			continue;
		}
		/* It sets the client up, refused or not; a refused one is closed there. */
		rfbNewClient(v->screen, fd);
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
		p[n++] = (struct pollfd){ .fd = v->listen_fd, .events = POLLIN };
		/* libvncserver keeps its clients' sockets in allFds, all below FD_SETSIZE. */
		for (int fd = 0; fd <= s->maxFd && fd < FD_SETSIZE && n < VNC_MAX_FDS; fd++)
			if (FD_ISSET(fd, &s->allFds))
				p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(p, n, v->clients ? VNC_FRAME_MS : -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "hv: vnc: poll failed (%s): the display stops\n",
			        strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		v->wakeups++;
		if (p[1].revents)
			vnc_accept(v);
		if (v->clients) {
			mark_dirty(v);
			drop_stalled(v);
		}
		rfbProcessEvents(s, 0);
	}
	return NULL;
}

/* Our listening socket, on addr:port only. */
static int listen_on(struct vnc *v, const struct in_addr *addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr = *addr,
		                  .sin_port = htons(port) };
	int one = 1;

	v->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (v->listen_fd < 0 ||
	    setsockopt(v->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(v->listen_fd, 64) < 0)
		return -errno;
	return 0;
}

void vnc_free(struct vnc *v)
{
	if (!v)
		return;
	vnc_stop(v);
	if (v->screen) {
		rfbShutdownServer(v->screen, TRUE);
		rfbScreenCleanup(v->screen);
	}
	if (v->stop_fd >= 0)
		close(v->stop_fd);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	free(v->bitmap);
	if (v->passwords[0]) {
		explicit_bzero(v->passwords[0], strlen(v->passwords[0]));
		free(v->passwords[0]);
	}
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
	v->stop_fd = v->listen_fd = -1;
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
	/*
	 * libvncserver's log and its wait for a slow client are process-wide:
	 * its errors come back here as ours, and one client that stops half
	 * way through a message holds up the others for VNC_CLIENT_WAIT, not
	 * 20 s.
	 */
	rfbLogEnable(0);
	rfbMaxClientWait = VNC_CLIENT_WAIT;
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
	/* Ours listens (listen_on); libvncserver's none, on no port and no IPv6. */
	v->screen->port = 0;
	v->screen->ipv6port = 0;
	v->screen->autoPort = FALSE;
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
	rc = listen_on(v, &addr, cfg->port);
	if (rc) {
		vnc_free(v);
		return err_sys(err, -rc, "vnc: cannot listen on %s:%u", cfg->addr, cfg->port);
	}
	rfbInitServer(v->screen);
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

	if (!v || !v->running)
		return;
	if (write(v->stop_fd, &one, sizeof(one)) < 0)
		pthread_cancel(v->thread);
	pthread_join(v->thread, NULL);
	v->running = false;
}

void vnc_report(const struct vnc *v, FILE *f)
{
	if (v)
		fprintf(f, "hv: display: %llu updates sent, %llu clients, %llu wake-ups\n",
		        (unsigned long long)v->updates, (unsigned long long)v->clients_seen,
		        (unsigned long long)v->wakeups);
}
