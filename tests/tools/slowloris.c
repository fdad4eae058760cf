/* SPDX-License-Identifier: MIT */
/*
 * A slowloris client for the server's tests: opens N connections to
 * HOST:PORT from the loopback addresses 127.0.0.FIRST.. (N spread over
 * SOURCES of them), sends a request line, then one header line every
 * INTERVAL ms on each, never ending the request. Prints "held K" (the
 * connections the server has not closed) once all are opened and again
 * after each round, until killed or SECONDS pass.
 * Usage: slowloris HOST PORT N FIRST SOURCES INTERVAL_MS SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int open_one(const struct sockaddr_in *to, unsigned src_octet)
{
	struct sockaddr_in from = { .sin_family = AF_INET };
	static const char line[] = "GET /images/x/latest HTTP/1.1\r\nHost: x\r\n";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	from.sin_addr.s_addr = htonl(0x7f000000u | (src_octet & 0xff));
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) ||
	    connect(fd, (const struct sockaddr *)to, sizeof(*to)) ||
	    send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the server closed fd (a read returns 0 or an error, not EAGAIN). */
static int closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	unsigned n, first, sources, interval, seconds, held;
	struct rlimit rl;
	time_t end;
	int *fds;

	if (argc != 8 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "usage: slowloris HOST PORT N FIRST SOURCES INTERVAL_MS SECONDS\n");
		return 2;
	}
	to.sin_port = htons((unsigned short)atoi(argv[2]));
	n = (unsigned)atoi(argv[3]);
	first = (unsigned)atoi(argv[4]);
	sources = (unsigned)atoi(argv[5]);
	interval = (unsigned)atoi(argv[6]);
	seconds = (unsigned)atoi(argv[7]);
	if (!n || !sources || first + sources > 255)
		return 2;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 16) {
		rl.rlim_cur = rl.rlim_max < n + 16 ? rl.rlim_max : n + 16;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		return 1;
	for (unsigned i = 0; i < n; i++)
		fds[i] = open_one(&to, first + i % sources);
	end = time(NULL) + seconds;
	do {
		struct timespec tick = { .tv_sec = interval / 1000,
			                 .tv_nsec = (long)(interval % 1000) * 1000000 };

		held = 0;
		for (unsigned i = 0; i < n; i++) {
			if (fds[i] >= 0 && closed(fds[i])) {
				close(fds[i]);
				fds[i] = -1;
			}
			held += fds[i] >= 0;
		}
		printf("held %u\n", held);
		fflush(stdout);
		nanosleep(&tick, NULL);
		for (unsigned i = 0; i < n; i++)
			if (fds[i] >= 0 && send(fds[i], "X-a: b\r\n", 8, MSG_NOSIGNAL) < 0) {
				close(fds[i]);
				fds[i] = -1;
			}
	} while (time(NULL) < end);
	return 0;
}
