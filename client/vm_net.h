/* SPDX-License-Identifier: MIT */
/*
 * circ run's network options, the same on both VMMs: --net none|user|tap:IF,
 * --hostfwd, --guestfwd and --mac, made into an hv back end or QEMU's
 * -netdev and -device.
 */
#ifndef CIRC_VM_NET_H
#define CIRC_VM_NET_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/net_backend.h"
#include "hv/net_user.h"
#include "client/cli.h"

enum vm_net_kind {
	VM_NET_NONE,
	VM_NET_USER,
	VM_NET_TAP
};

struct vm_net {
	enum vm_net_kind kind;
	struct net_user_config user; /* VM_NET_USER */
	char tap[IFNAMSIZ];          /* VM_NET_TAP */
	bool have_mac;
	uint8_t mac[NET_MAC_LEN];
};

/* The options' help lines, for circ run --help. */
#define VM_NET_HELP                                                                            \
	"  --net none|user[,restrict]|tap:IFNAME\n"                                            \
	"                       a virtio-net card: user is a private network behind the\n"     \
	"                       host's own sockets (DHCP, DNS, outbound TCP/UDP; no root);\n"  \
	"                       restrict lets the guest reach only its --guestfwd ports;\n"    \
	"                       tap:IFNAME joins a tap interface an administrator made\n"      \
	"                       (default none)\n"                                              \
	"  --hostfwd [tcp|udp]:[HOSTADDR]:PORT-[GUESTADDR]:PORT\n"                             \
	"                       with --net user: a host port that forwards to the guest\n"     \
	"                       (HOSTADDR default 127.0.0.1; repeatable)\n"                    \
	"  --guestfwd [tcp]:GUESTADDR:PORT-tcp:HOSTADDR:PORT\n"                                \
	"                       with --net user: connections the guest makes to GUESTADDR\n"   \
	"                       (in 10.0.2.0/24) go to a host port (repeatable): on hv,\n"     \
	"                       a host connection each; on QEMU, one stream for all, opened\n" \
	"                       as QEMU starts\n"                                              \
	"  --mac MAC            the card's address (default: derived from the first disk's\n"  \
	"                       name, 52:54:00:xx:xx:xx)\n"

enum vm_net_opt {
	VM_NET_OPT_NET,
	VM_NET_OPT_HOSTFWD,
	VM_NET_OPT_GUESTFWD,
	VM_NET_OPT_MAC,
};

/* Takes option opt's argument; 0, or circ's usage exit status after saying why. */
int vm_net_parse(const struct cli *cli, struct vm_net *n, enum vm_net_opt opt, const char *arg);
/* After all options: forwards only with --net user, and the MAC (derived from name, or NULL). */
int vm_net_finish(const struct cli *cli, struct vm_net *n, const char *name);
/* The back end hv's card uses; n->kind must not be VM_NET_NONE. */
CIRC_MUST_CHECK int vm_net_open(const struct vm_net *n, struct net_backend *out,
                                struct circ_err *err);
/*
 * QEMU's arguments for the same network, appended to argv at *n_args
 * (at most VM_NET_QEMU_ARGS); the strings are allocated into *owned
 * (freed with free). 0, or -1 out of memory.
 */
#define VM_NET_QEMU_ARGS 4
CIRC_MUST_CHECK int vm_net_qemu_args(const struct vm_net *n, char **argv, size_t *n_args,
                                     char **owned);

#endif
