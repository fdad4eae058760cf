/* SPDX-License-Identifier: MIT */
/*
 * User-mode networking for a guest, on libslirp (QEMU's -netdev user): the
 * guest is alone on 10.0.2.0/24 with a virtual gateway (10.0.2.2) that
 * answers DHCP (the guest gets 10.0.2.15), DNS (10.0.2.3, through the
 * host's resolver) and ping, and makes the guest's outbound TCP and UDP
 * into the host's own sockets. No root, no host interface. Host ports
 * forward to the guest (hostfwd); a guest address and port can forward to
 * a TCP port on the host (guestfwd).
 *
 * Restricted (QEMU's restrict=on): the guest reaches nothing but the
 * gateway's DHCP and ping and its guest forwards, and no name is
 * resolved through the host.
 *
 * libslirp is single-threaded: the back end runs it on a thread of its own
 * under one lock, which the device's send also takes.
 */
#ifndef CIRC_HV_NET_USER_H
#define CIRC_HV_NET_USER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/net_backend.h"

#define NET_USER_MAX_FWDS 8

/* One forward, host port to guest port (hostfwd) or guest address and port to host port (guestfwd).
 */
struct net_fwd {
	bool udp;
	struct in_addr host_addr, guest_addr;
	uint16_t host_port, guest_port;
};

struct net_user_config {
	bool restrict_guest;
	struct net_fwd hostfwd[NET_USER_MAX_FWDS];
	size_t n_hostfwd;
	struct net_fwd guestfwd[NET_USER_MAX_FWDS];
	size_t n_guestfwd;
};

/*
 * QEMU's spellings. hostfwd: [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT;
 * an empty HOSTADDR is 127.0.0.1 (QEMU's is every address: write 0.0.0.0
 * for that), an empty GUESTADDR the guest's DHCP address. guestfwd:
 * [tcp]:GUESTADDR:GUESTPORT-tcp:HOSTADDR:HOSTPORT, where GUESTADDR is in
 * 10.0.2.0/24 and not the gateway's.
 */
CIRC_MUST_CHECK int net_fwd_parse_host(const char *spec, struct net_fwd *out, struct circ_err *err);
CIRC_MUST_CHECK int net_fwd_parse_guest(const char *spec, struct net_fwd *out,
                                        struct circ_err *err);

/* Starts the stack and its thread, with the forwards listening. */
CIRC_MUST_CHECK int net_backend_open_user(const struct net_user_config *cfg,
                                          struct net_backend *out, struct circ_err *err);

#endif
