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
 *
 * Exit 0, or 1 with one line on stderr; 2 for bad arguments.
 */
#include <errno.h>
#include <png.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/socket.h>

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

static void quiet(const char *fmt, ...)
{
	(void)fmt;
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
	rfbClientLog = rfbClientErr = quiet;
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

static int usage(void)
{
	fprintf(stderr, "usage: vnctool ADDR:PORT [--password-file F] "
	                "snapshot|check-pattern OUT.png | type TEXT | click X Y | fps SECONDS\n");
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
		fprintf(stderr, "vnctool: cannot connect to %s\n", argv[1]);
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
	} else if (!strcmp(cmd, "type")) {
		/* As a viewer does: input once the screen is shown. */
		if (i >= argc || !wait_updates(cl, &t, 1))
			return usage();
		for (const char *c = argv[i]; *c; c++)
			key(cl, (uint8_t)*c);
		key(cl, XK_Return);
		finish_input(cl);
	} else if (!strcmp(cmd, "click")) {
		if (i + 1 >= argc || !wait_updates(cl, &t, 1))
			return usage();
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
	rfbClientCleanup(cl);
	free((void *)t.password);
	return rc;
}
