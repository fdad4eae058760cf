/* SPDX-License-Identifier: MIT */
/*
 * The network back ends, without KVM: the forward specs, the guest-forward
 * relay, and libslirp answering DHCP and refusing or forwarding a TCP
 * connection, driven with hand-built frames (all on this host, nothing
 * leaves it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv/net_backend.h"
#include "hv/net_relay.h"
#include "hv/net_user.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

static const uint8_t test_mac[NET_MAC_LEN] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

START_TEST(test_fwd_parse)
{
	struct net_fwd f;
	struct circ_err err;
	char a[INET_ADDRSTRLEN];

	ck_assert_int_eq(net_fwd_parse_host("tcp::8080-:80", &f, &err), 0);
	ck_assert(!f.udp);
	ck_assert_str_eq(inet_ntop(AF_INET, &f.host_addr, a, sizeof(a)), "127.0.0.1");
	ck_assert_str_eq(inet_ntop(AF_INET, &f.guest_addr, a, sizeof(a)), "10.0.2.15");
	ck_assert_uint_eq(f.host_port, 8080);
	ck_assert_uint_eq(f.guest_port, 80);
	ck_assert_int_eq(net_fwd_parse_host("udp:0.0.0.0:5353-10.0.2.20:53", &f, &err), 0);
	ck_assert(f.udp);
	ck_assert_str_eq(inet_ntop(AF_INET, &f.host_addr, a, sizeof(a)), "0.0.0.0");
	ck_assert_str_eq(inet_ntop(AF_INET, &f.guest_addr, a, sizeof(a)), "10.0.2.20");
	ck_assert_int_eq(net_fwd_parse_host(":2222-:22", &f, &err), 0);
	ck_assert_uint_eq(f.host_port, 2222);
	ck_assert_int_eq(net_fwd_parse_host("::2223-:22", &f, &err), 0);
	ck_assert_uint_eq(f.host_port, 2223);
	ck_assert(!f.udp);
	static const char *const bad_host[] = {
		"",
		"tcp",
		"tcp::8080",
		"tcp::0-:80",
		"tcp::65536-:80",
		"sctp::1-:2",
		"tcp:1.2.3:1-:2",
		"tcp::1-:x",
		"tcp::1-10.0.2.300:2",
		"tcp::-1-:2",
	};
	for (size_t i = 0; i < sizeof(bad_host) / sizeof(bad_host[0]); i++) {
		ck_assert_msg(net_fwd_parse_host(bad_host[i], &f, &err) == -1, "%s", bad_host[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "hostfwd"));
	}

	ck_assert_int_eq(net_fwd_parse_guest("tcp:10.0.2.100:80-tcp:127.0.0.1:8000", &f, &err), 0);
	ck_assert_str_eq(inet_ntop(AF_INET, &f.guest_addr, a, sizeof(a)), "10.0.2.100");
	ck_assert_str_eq(inet_ntop(AF_INET, &f.host_addr, a, sizeof(a)), "127.0.0.1");
	ck_assert_uint_eq(f.guest_port, 80);
	ck_assert_uint_eq(f.host_port, 8000);
	/* QEMU's empty protocol is tcp. */
	ck_assert_int_eq(net_fwd_parse_guest(":10.0.2.100:80-tcp:127.0.0.1:8000", &f, &err), 0);
	ck_assert_uint_eq(f.guest_port, 80);
	static const char *const bad_guest[] = {
		"udp:10.0.2.100:53-tcp:127.0.0.1:53", "tcp:10.0.2.100:80-127.0.0.1:8000",
		"tcp::80-tcp:127.0.0.1:8000",         "tcp:10.0.2.100:80-tcp::8000",
		"tcp:10.0.3.100:80-tcp:127.0.0.1:1",  "tcp:10.0.2.2:80-tcp:127.0.0.1:1",
		"tcp:10.0.2.3:53-tcp:127.0.0.1:1",    "tcp:10.0.2.15:80-tcp:127.0.0.1:1",
		"tcp:10.0.2.100:80-udp:127.0.0.1:1",  "tcp:10.0.2.100:80",
	};
	for (size_t i = 0; i < sizeof(bad_guest) / sizeof(bad_guest[0]); i++) {
		ck_assert_msg(net_fwd_parse_guest(bad_guest[i], &f, &err) == -1, "%s",
		              bad_guest[i]);
		ck_assert_ptr_nonnull(strstr(err.msg, "guestfwd"));
	}
}
END_TEST

/* A TCP listener on a free loopback port. */
static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

START_TEST(test_relay)
{
	struct net_fwd f = { .host_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct net_relay *r;
	struct circ_err err;
	char buf[16];
	int lfd = listen_loopback(&f.host_port), c, s;
	char dir[sizeof(sa.sun_path)];
	struct stat st;

	ck_assert_int_eq(net_relay_start(&f, 1, &r, &err), 0);
	/* Only this user can reach the forward's socket. */
	ck_assert_int_eq(stat(net_relay_path(r, 0), &st), 0);
	strcpy(dir, net_relay_path(r, 0));
	*strrchr(dir, '/') = 0;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	for (int round = 0; round < 2; round++) {
		strcpy(sa.sun_path, net_relay_path(r, 0));
		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
		s = accept(lfd, NULL, NULL);
		ck_assert_int_ge(s, 0);
		ck_assert_int_eq(write(c, "ping", 4), 4);
		ck_assert_int_eq(read(s, buf, sizeof(buf)), 4);
		ck_assert_mem_eq(buf, "ping", 4);
		ck_assert_int_eq(write(s, "pong!", 5), 5);
		ck_assert_int_eq(read(c, buf, sizeof(buf)), 5);
		ck_assert_mem_eq(buf, "pong!", 5);
		/* Each end's close reaches the other. */
		if (round == 0) {
			close(s);
			ck_assert_int_eq(read(c, buf, sizeof(buf)), 0);
			close(c);
		} else {
			close(c);
			ck_assert_int_eq(read(s, buf, sizeof(buf)), 0);
			close(s);
		}
	}
	/* A host port that refuses: the guest's connection ends at once. */
	struct net_fwd refused = f;
	struct net_relay *r2;
	uint16_t dead;
	int dfd = listen_loopback(&dead);

	close(dfd); /* nothing listens there now */
	refused.host_port = dead;
	ck_assert_int_eq(net_relay_start(&refused, 1, &r2, &err), 0);
	strcpy(sa.sun_path, net_relay_path(r2, 0));
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(read(c, buf, sizeof(buf)), 0);
	close(c);
	net_relay_stop(r2);

	/* Stopping with a connection open ends it. */
	strcpy(sa.sun_path, net_relay_path(r, 0));
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	s = accept(lfd, NULL, NULL);
	ck_assert_int_ge(s, 0);
	char path[sizeof(sa.sun_path)];

	strcpy(path, net_relay_path(r, 0));
	net_relay_stop(r);
	ck_assert_int_eq(read(s, buf, sizeof(buf)), 0);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_int_ne(access(dir, F_OK), 0);
	close(c);
	close(s);
	close(lfd);
}
END_TEST

/* Waits for a frame from the back end; its length, or 0 after 5 s. */
static ssize_t wait_frame(struct net_backend *be, uint8_t *buf, size_t cap)
{
	struct iovec iov = { buf, cap };

	for (int i = 0; i < 50; i++) {
		struct pollfd p = { .fd = be->rx_fd, .events = POLLIN };
		ssize_t n = be->ops->recv(be->ctx, &iov, 1);

		if (n != 0)
			return n;
		poll(&p, 1, 100);
	}
	return 0;
}

static uint16_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Ethernet and IPv4 from 10.0.2.15 (test_mac) to dst, to slirp's gateway MAC; returns the payload.
 */
static uint8_t *ipv4(uint8_t *f, const uint8_t *dst_mac, uint8_t proto, const char *src,
                     const char *dst, size_t len)
{
	uint8_t *ip = f + 14;

	memcpy(f, dst_mac, 6);
	memcpy(f + 6, test_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + len) >> 8);
	ip[3] = (uint8_t)(20 + len);
	ip[8] = 64;
	ip[9] = proto;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	uint16_t c = sum16(ip, 20, 0);

	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	return ip + 20;
}

/* DHCPDISCOVER from test_mac; the offered address, from slirp's answer. */
static void dhcp_offer(struct net_backend *be, uint8_t *gw_mac, char *yiaddr)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t f[14 + 20 + 8 + 300], r[2048],
	    *udp = ipv4(f, bcast, 17, "0.0.0.0", "255.255.255.255", 8 + 300);
	struct iovec iov = { f, sizeof(f) };
	ssize_t n;

	memset(udp, 0, 8 + 300);
	udp[1] = 68;
	udp[3] = 67;
	udp[4] = (8 + 300) >> 8;
	udp[5] = (8 + 300) & 0xff;
	udp[8] = 1;
	udp[9] = 1;
	udp[10] = 6;
	memcpy(udp + 8 + 4, "CIRC", 4);
	memcpy(udp + 8 + 28, test_mac, 6);
	memcpy(udp + 8 + 236, "\x63\x82\x53\x63\x35\x01\x01\xff", 8);
	ck_assert_int_eq(be->ops->send(be->ctx, &iov, 1), 0);
	n = wait_frame(be, r, sizeof(r));
	ck_assert_int_ge(n, 14 + 20 + 8 + 240);
	ck_assert_uint_eq(r[23], 17);        /* UDP */
	ck_assert_uint_eq(r[42], 2);         /* BOOTREPLY */
	ck_assert_mem_eq(r + 46, "CIRC", 4); /* our transaction */
	memcpy(gw_mac, r + 6, 6);
	inet_ntop(AF_INET, r + 58, yiaddr, INET_ADDRSTRLEN);
}

/* A TCP segment from 10.0.2.15:40000 to dst:port with flags, seq and ack; returns the answer's
 * flags. */
static uint8_t tcp_send(struct net_backend *be, const uint8_t *gw_mac, const char *dst,
                        uint16_t port, uint8_t flags, uint32_t seq, uint32_t *ack)
{
	uint8_t f[14 + 20 + 20], r[2048], *tcp = ipv4(f, gw_mac, 6, "10.0.2.15", dst, 20);
	uint8_t pseudo[12 + 20];
	struct iovec iov = { f, sizeof(f) };
	uint32_t a = *ack, their;
	uint16_t c;
	ssize_t n;

	memset(tcp, 0, 20);
	tcp[0] = 40000 >> 8;
	tcp[1] = 40000 & 0xff;
	tcp[2] = (uint8_t)(port >> 8);
	tcp[3] = (uint8_t)port;
	for (int i = 0; i < 4; i++) {
		tcp[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
		tcp[8 + i] = (uint8_t)(a >> (24 - 8 * i));
	}
	tcp[12] = 5 << 4; /* header length */
	tcp[13] = flags;
	tcp[14] = 0xff; /* window */
	memcpy(pseudo, f + 26, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = 0;
	pseudo[11] = 20;
	memcpy(pseudo + 12, tcp, 20);
	c = sum16(pseudo, sizeof(pseudo), 0);
	tcp[16] = (uint8_t)(c >> 8);
	tcp[17] = (uint8_t)c;
	ck_assert_int_eq(be->ops->send(be->ctx, &iov, 1), 0);
	if (!(flags & 0x02))
		return 0; /* an ACK is not answered */
	for (int i = 0; i < 8; i++) {
		n = wait_frame(be, r, sizeof(r));
		ck_assert_int_gt(n, 0);
		/* slirp may ARP first; the answer is TCP to our port. */
		if (n >= 54 && r[12] == 0x08 && r[13] == 0 && r[23] == 6 && r[36] == 40000 >> 8) {
			their = (uint32_t)r[38] << 24 | (uint32_t)r[39] << 16 |
			        (uint32_t)r[40] << 8 | r[41];
			*ack = their + 1;
			return r[47];
		}
	}
	ck_abort_msg("no TCP answer from slirp");
	return 0;
}

START_TEST(test_user_network)
{
	struct net_user_config cfg = { .restrict_guest = true };
	struct net_backend be;
	struct circ_err err;
	uint8_t gw_mac[6];
	char yiaddr[INET_ADDRSTRLEN];
	uint16_t port;
	uint32_t ack = 0;
	int lfd = listen_loopback(&port), s;

	ck_assert_int_eq(
	    net_fwd_parse_guest("tcp:10.0.2.100:80-tcp:127.0.0.1:1", &cfg.guestfwd[0], &err), 0);
	cfg.guestfwd[0].host_port = port;
	cfg.n_guestfwd = 1;
	ck_assert_int_eq(net_backend_open_user(&cfg, &be, &err), 0);
	dhcp_offer(&be, gw_mac, yiaddr);
	ck_assert_str_eq(yiaddr, "10.0.2.15");
	/* Restricted: a connection anywhere else is refused (RST), the forward's is taken
	 * (SYN+ACK). */
	ck_assert_uint_eq(tcp_send(&be, gw_mac, "10.0.2.2", 22, 0x02, 1, &ack) & 0x04, 0x04);
	ack = 0;
	ck_assert_uint_eq(tcp_send(&be, gw_mac, "10.0.2.100", 80, 0x02, 1, &ack) & 0x12, 0x12);
	/* Once the handshake is done, the connection reaches the host port through the relay. */
	tcp_send(&be, gw_mac, "10.0.2.100", 80, 0x10, 2, &ack);
	s = accept(lfd, NULL, NULL);
	ck_assert_int_ge(s, 0);
	close(s);
	net_backend_close(&be);

	/* The same SYN on an unrestricted network reaches the listening host port. */
	cfg.restrict_guest = false;
	cfg.n_guestfwd = 0;
	ck_assert_int_eq(net_backend_open_user(&cfg, &be, &err), 0);
	dhcp_offer(&be, gw_mac, yiaddr);
	ack = 0;
	ck_assert_uint_eq(tcp_send(&be, gw_mac, "10.0.2.2", port, 0x02, 1, &ack) & 0x12, 0x12);
	net_backend_close(&be);
	close(lfd);
}
END_TEST

START_TEST(test_user_network_bad_hostfwd)
{
	struct net_user_config cfg = { 0 };
	struct net_backend be;
	struct circ_err err;
	uint16_t port;
	int lfd = listen_loopback(&port);
	char spec[64];

	/* A host port already taken: the error names the forward. */
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u-:80", port);
	ck_assert_int_eq(net_fwd_parse_host(spec, &cfg.hostfwd[0], &err), 0);
	cfg.n_hostfwd = 1;
	ck_assert_int_eq(net_backend_open_user(&cfg, &be, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "hostfwd tcp:127.0.0.1:"));
	ck_assert_int_eq(be.rx_fd, -1);
	close(lfd);
}
END_TEST

Suite *net_backend_suite(void)
{
	Suite *s = suite_create("net_backend");
	TCase *be = tcase_create("backends");

	tcase_set_timeout(be, 30);
	tcase_add_test(be, test_fwd_parse);
	tcase_add_test(be, test_relay);
	tcase_add_test(be, test_user_network);
	tcase_add_test(be, test_user_network_bad_hostfwd);
	suite_add_tcase(s, be);
	return s;
}
