/* SPDX-License-Identifier: MIT */
/*
 * The tests' VNC client (libvncclient), for hv's display:
 *
 *   vnctool ADDR:PORT [--password-file F] snapshot OUT.png
 *       waits for a whole frame with something drawn (more than one
 *       colour) and saves it as a PNG; prints WxH
 *   vnctool ADDR:PORT [--password-file F] check-pattern OUT.png
 *       the same, then compares each pixel with the test guest's pattern
 *       (red = x, green = y, blue = x + y, each mod 256); exits 1 naming
 *       the first pixel that differs
 *   vnctool ADDR:PORT [--password-file F] type TEXT
 *       presses and lets go each character's key, then Return
 *   vnctool ADDR:PORT [--password-file F] click X Y
 *       moves the pointer to X,Y and clicks the left button
 *   vnctool ADDR:PORT [--password-file F] fps SECONDS
 *       counts the updates that arrive in SECONDS (each one asked for as
 *       the last arrives); prints "UPDATES SECONDS BYTES"
 *   vnctool ADDR:PORT [--password-file F] press-watch CHAR OUT.png
 *       on one connection: waits for the pattern, presses and lets go
 *       CHAR's key, then waits for the test guest's answer (the top 8 rows
 *       white, the rest the pattern still) and saves the frame
 *   vnctool ADDR:PORT flood N
 *       opens N connections at once, each sending a protocol version, and
 *       closes them: a server that falls over fails the next command
 *   vnctool ADDR:PORT websocket
 *       asks for a WebSocket upgrade with a foreign Origin, as a web page's
 *       script would; exits 0 if the server then closes the connection, 1
 *       if it keeps it open, waiting for the client's turn (10 s)
 *
 * Exit 0, or 1 with one line on stderr; 2 for bad arguments.
 */
#include <errno.h>
#include <png.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rfb/keysym.h>
#include <rfb/rfbclient.h>

#define WAIT_US (10 * 1000 * 1000)

struct tool {
	const char *password;
	uint64_t updates, bytes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libvncclient's last complaint, for the one line vnctool prints on failure. */
static char last_error[256];

static void keep_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	last_error[strcspn(last_error, "\n")] = 0;
}

static char *get_password(rfbClient *cl)
{
	struct tool *t = rfbClientGetClientData(cl, (void *)get_password);

	return t && t->password ? strdup(t->password) : strdup("");
}

static void frame_done(rfbClient *cl)
{
	struct tool *t = rfbClientGetClientData(cl, (void *)get_password);

	t->updates++;
}

static void got_rect(rfbClient *cl, int x, int y, int w, int h)
{
	struct tool *t = rfbClientGetClientData(cl, (void *)get_password);

	(void)x;
	(void)y;
	t->bytes += (uint64_t)w * h * 4;
	(void)cl;
}

static rfbClient *connect_to(const char *hostport, struct tool *t)
{
	rfbClient *cl = rfbGetClient(8, 3, 4); /* 32 bits: R, G, B, X in memory order */
	const char *colon = strrchr(hostport, ':');

	if (!cl || !colon)
		return NULL;
	rfbClientLog = rfbClientErr = keep_error;
	free(cl->serverHost); /* rfbGetClient's "" */
	cl->serverHost = strndup(hostport, (size_t)(colon - hostport));
	cl->serverPort = atoi(colon + 1);
	cl->GetPassword = get_password;
	cl->FinishedFrameBufferUpdate = frame_done;
	cl->GotFrameBufferUpdate = got_rect;
	/* Lossless: tight's JPEG would change the pixels compared. */
	cl->appData.encodingsString = "raw";
	rfbClientSetClientData(cl, (void *)get_password, t);
	/* Connects, authenticates and asks for the whole frame; frees cl on failure. */
	if (!rfbInitClient(cl, NULL, NULL))
		return NULL;
	return cl;
}

/*
 * Handles messages until want updates have come and, with them, pixels for
 * the whole screen (a first update may hold only the cursor); fails after
 * WAIT_US.
 */
static bool wait_updates(rfbClient *cl, struct tool *t, uint64_t want)
{
	double end = now_s() + WAIT_US / 1e6;

	while (t->updates < want || t->bytes < (uint64_t)cl->width * cl->height * 4) {
		int n = WaitForMessage(cl, 100000);

		if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl)) || now_s() > end)
			return false;
	}
	return true;
}

/* Whether the frame holds more than one colour: something has been drawn. */
static bool drawn(rfbClient *cl)
{
	const uint32_t *px = (const uint32_t *)cl->frameBuffer;
	size_t n = (size_t)cl->width * cl->height;

	for (size_t i = 1; i < n; i++)
		if ((px[i] ^ px[0]) & 0xffffff)
			return true;
	return false;
}

/* Updates until the screen shows something (a VMM may send a blank frame first). */
static bool wait_drawn(rfbClient *cl, struct tool *t)
{
	double end = now_s() + WAIT_US / 1e6;

	if (!wait_updates(cl, t, 1))
		return false;
	while (!drawn(cl)) {
		int n = WaitForMessage(cl, 100000);

		if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl)) || now_s() > end)
			return false;
	}
	return true;
}

static int save_png(rfbClient *cl, const char *path)
{
	FILE *f = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;

	if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
		fprintf(stderr, "vnctool: cannot write %s\n", path);
		if (png)
			png_destroy_write_struct(&png, info ? &info : NULL);
		if (f)
			fclose(f);
		return 1;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)cl->width, (png_uint_32)cl->height, 8,
	             PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
	             PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	png_set_filler(png, 0, PNG_FILLER_AFTER); /* rows are R, G, B, X */
	for (int y = 0; y < cl->height; y++)
		png_write_row(png, cl->frameBuffer + (size_t)y * cl->width * 4);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return fclose(f) ? 1 : 0;
}

static int check_pattern(rfbClient *cl)
{
	for (int y = 0; y < cl->height; y++)
		for (int x = 0; x < cl->width; x++) {
			const uint8_t *p = cl->frameBuffer + ((size_t)y * cl->width + x) * 4;

			if (p[0] != (x & 0xff) || p[1] != (y & 0xff) || p[2] != ((x + y) & 0xff)) {
				fprintf(stderr,
				        "vnctool: pixel %d,%d is %02x%02x%02x, not %02x%02x%02x\n",
				        x, y, p[0], p[1], p[2], x & 0xff, y & 0xff, (x + y) & 0xff);
				return 1;
			}
		}
	return 0;
}

static void key(rfbClient *cl, uint32_t sym)
{
	SendKeyEvent(cl, sym, TRUE);
	SendKeyEvent(cl, sym, FALSE);
}

/*
 * Ends the connection only once the server has read all we sent: closing
 * at once could make it write an update into a closed socket, drop the
 * client and never read the rest.
 */
static void finish_input(rfbClient *cl)
{
	double end = now_s() + WAIT_US / 1e6;

	shutdown(cl->sock, SHUT_WR);
	while (now_s() < end) {
		int n = WaitForMessage(cl, 100000);

		/* The server reads our end, drops us; we read its end. */
		if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl)))
			break;
	}
}

static char *read_password(const char *path)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (!f || !fgets(line, sizeof(line), f)) {
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = 0;
	return strdup(line);
}

/* The test guest's answer to a key: rows 0 to 7 white, the pattern below. */
static bool top_white(rfbClient *cl)
{
	for (int y = 0; y < 8; y++)
		for (int x = 0; x < cl->width; x++) {
			const uint8_t *p = cl->frameBuffer + ((size_t)y * cl->width + x) * 4;

			if (p[0] != 0xff || p[1] != 0xff || p[2] != 0xff)
				return false;
		}
	return true;
}

static int press_watch(rfbClient *cl, struct tool *t, char c, const char *png)
{
	double end;

	if (!wait_updates(cl, t, 1) || check_pattern(cl))
		return 1;
	key(cl, (uint8_t)c);
	/* The change arrives as updates of the rows written (KVM's dirty log). */
	end = now_s() + WAIT_US / 1e6;
	while (!top_white(cl)) {
		int n = WaitForMessage(cl, 100000);

		if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl)) || now_s() > end) {
			fprintf(stderr, "vnctool: the top rows never turned white\n");
			return 1;
		}
	}
	/* Only the top changed: below, the pattern as it was. */
	for (int y = 8; y < cl->height; y++)
		for (int x = 0; x < cl->width; x++) {
			const uint8_t *p = cl->frameBuffer + ((size_t)y * cl->width + x) * 4;

			if (p[0] != (x & 0xff) || p[1] != (y & 0xff) || p[2] != ((x + y) & 0xff)) {
				fprintf(stderr, "vnctool: pixel %d,%d changed too\n", x, y);
				return 1;
			}
		}
	return save_png(cl, png);
}

static int tcp_connect(const char *hostport)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *colon = strrchr(hostport, ':');
	char host[64];
	int fd;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int flood(const char *hostport, int n)
{
	struct rlimit rl;
	int *fds = calloc((size_t)n, sizeof(int)), opened = 0;

	if (!fds)
		return 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < n; i++) {
		fds[i] = tcp_connect(hostport);
		if (fds[i] >= 0) {
			opened++;
			if (write(fds[i], "RFB 003.008\n", 12) < 0) {
				/* A server that closed at once: the connection counts all the same.
				 */
			}
		}
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	printf("%d connections\n", opened);
	free(fds);
	return opened ? 0 : 1;
}

static int websocket(const char *hostport)
{
	static const char req[] =
	    "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n";
	char buf[4096];
	int fd = tcp_connect(hostport);
	ssize_t n;

	if (fd < 0 || write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
		return 1;
	/*
	 * libvncserver answers the upgrade and sends its greeting before the
	 * server can refuse the client; refused, the server then closes. Let
	 * in, it would wait for the client's protocol version.
	 */
	struct timeval tv = { .tv_sec = 10 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	if (n < 0) {
		fprintf(stderr, "vnctool: the server kept the WebSocket client\n");
		return 1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: vnctool ADDR:PORT [--password-file F] snapshot|check-pattern OUT.png |\n"
	        "         type TEXT | click X Y | fps SECONDS | press-watch CHAR OUT.png\n"
	        "       vnctool ADDR:PORT flood N | websocket\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct tool t = { 0 };
	const char *cmd;
	rfbClient *cl;
	int i = 2, rc = 0;

	if (argc < 3)
		return usage();
	if (!strcmp(argv[2], "flood"))
		return argc == 4 ? flood(argv[1], atoi(argv[3])) : usage();
	if (!strcmp(argv[2], "websocket"))
		return websocket(argv[1]);
	/* The server may close first (it saw our end): a write then is no reason to die. */
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[i], "--password-file")) {
		if (argc < 5 || !(t.password = read_password(argv[i + 1]))) {
			fprintf(stderr, "vnctool: cannot read the password file\n");
			return 1;
		}
		i += 2;
	}
	cmd = argv[i++];
	cl = connect_to(argv[1], &t);
	if (!cl) {
		fprintf(stderr, "vnctool: cannot connect to %s: %s\n", argv[1],
		        last_error[0] ? last_error : "no reason given");
		return 1;
	}
	if (!strcmp(cmd, "snapshot") || !strcmp(cmd, "check-pattern")) {
		if (i >= argc)
			return usage();
		if (!wait_drawn(cl, &t)) {
			fprintf(stderr, "vnctool: no frame with anything drawn from %s\n", argv[1]);
			rc = 1;
		} else {
			printf("%dx%d\n", cl->width, cl->height);
			rc = save_png(cl, argv[i]);
			if (!rc && !strcmp(cmd, "check-pattern"))
				rc = check_pattern(cl);
		}
	} else if (!strcmp(cmd, "press-watch")) {
		if (i + 1 >= argc || !argv[i][0])
			return usage();
		rc = press_watch(cl, &t, argv[i][0], argv[i + 1]);
	} else if (!strcmp(cmd, "type")) {
		/* As a viewer does: input once the screen is shown. */
		if (i >= argc)
			return usage();
		if (!wait_updates(cl, &t, 1)) {
			fprintf(stderr, "vnctool: no frame from %s\n", argv[1]);
			return 1;
		}
		for (const char *c = argv[i]; *c; c++)
			key(cl, (uint8_t)*c);
		key(cl, XK_Return);
		finish_input(cl);
	} else if (!strcmp(cmd, "click")) {
		if (i + 1 >= argc)
			return usage();
		if (!wait_updates(cl, &t, 1)) {
			fprintf(stderr, "vnctool: no frame from %s\n", argv[1]);
			return 1;
		}
		SendPointerEvent(cl, atoi(argv[i]), atoi(argv[i + 1]), 0);
		SendPointerEvent(cl, atoi(argv[i]), atoi(argv[i + 1]), rfbButton1Mask);
		SendPointerEvent(cl, atoi(argv[i]), atoi(argv[i + 1]), 0);
		finish_input(cl);
	} else if (!strcmp(cmd, "fps")) {
		double secs = i < argc ? atof(argv[i]) : 0, start, end;

		if (secs <= 0 || !wait_updates(cl, &t, 1))
			return usage();
		t.updates = t.bytes = 0;
		start = now_s();
		end = start + secs;
		while (now_s() < end) {
			int n = WaitForMessage(cl, 10000);

			if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl))) {
				rc = 1;
				break;
			}
		}
		printf("%llu %.3f %llu\n", (unsigned long long)t.updates, now_s() - start,
		       (unsigned long long)t.bytes);
	} else {
		rc = usage();
	}
	/* The frame is the application's to free, not rfbClientCleanup's. */
	free(cl->frameBuffer);
	rfbClientCleanup(cl);
	free((void *)t.password);
	return rc;
}
