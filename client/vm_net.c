/* SPDX-License-Identifier: MIT */
#include "client/vm_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* QEMU's own prefix for guests' cards: locally administered, unicast. */
static const uint8_t mac_prefix[3] = { 0x52, 0x54, 0x00 };

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "xx:xx:xx:xx:xx:xx", hex digits only; a card's address is unicast and not all zeros. */
static int parse_mac(const char *s, uint8_t mac[NET_MAC_LEN])
{
	static const uint8_t zero[NET_MAC_LEN];

	if (strlen(s) != 3 * NET_MAC_LEN - 1)
		return -1;
	for (int i = 0; i < NET_MAC_LEN; i++) {
		int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < NET_MAC_LEN - 1 && s[3 * i + 2] != ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return (mac[0] & 1) || !memcmp(mac, zero, sizeof(zero)) ? -1 : 0;
}

/* What Linux takes for an interface name, less what would split QEMU's options. */
static bool tap_name_ok(const char *name, size_t len)
{
	if (!len || len >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == ',' || name[i] == ':' || name[i] == '=' ||
		    (unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return false;
	return true;
}

int vm_net_parse(const struct cli *cli, struct vm_net *n, enum vm_net_opt opt, const char *arg)
{
	struct circ_err err;
	size_t len;

	switch (opt) {
	case VM_NET_OPT_NET:
		if (!strcmp(arg, "none")) {
			n->kind = VM_NET_NONE;
		} else if (!strcmp(arg, "user") || !strcmp(arg, "user,restrict")) {
			n->kind = VM_NET_USER;
			n->user.restrict_guest = strchr(arg, ',') != NULL;
		} else if (!strncmp(arg, "tap:", 4)) {
			len = strlen(arg + 4);
			if (!tap_name_ok(arg + 4, len))
				return cli_usage_error(cli, "bad tap interface name '%s'", arg + 4);
			n->kind = VM_NET_TAP;
			memcpy(n->tap, arg + 4, len + 1);
		} else {
			return cli_usage_error(
			    cli, "--net is none, user, user,restrict or tap:IFNAME, not '%s'", arg);
		}
		return 0;
	case VM_NET_OPT_HOSTFWD:
		if (n->user.n_hostfwd == NET_USER_MAX_FWDS)
			return cli_usage_error(cli, "at most %d --hostfwd", NET_USER_MAX_FWDS);
		if (net_fwd_parse_host(arg, &n->user.hostfwd[n->user.n_hostfwd], &err))
			return cli_usage_error(cli, "%s", err.msg);
		n->user.n_hostfwd++;
		return 0;
	case VM_NET_OPT_GUESTFWD:
		if (n->user.n_guestfwd == NET_USER_MAX_FWDS)
			return cli_usage_error(cli, "at most %d --guestfwd", NET_USER_MAX_FWDS);
		if (net_fwd_parse_guest(arg, &n->user.guestfwd[n->user.n_guestfwd], &err))
			return cli_usage_error(cli, "%s", err.msg);
		n->user.n_guestfwd++;
		return 0;
	case VM_NET_OPT_MAC:
		if (parse_mac(arg, n->mac))
			return cli_usage_error(
			    cli,
			    "bad --mac '%s' (six hex bytes, colon-separated, not a group address)",
			    arg);
		n->have_mac = true;
		return 0;
	}
	return cli_usage_error(cli, "unknown network option");
}

int vm_net_finish(const struct cli *cli, struct vm_net *n, const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds, nothing secret */

	if (n->kind != VM_NET_USER && (n->user.n_hostfwd || n->user.n_guestfwd))
		return cli_usage_error(cli, "--hostfwd and --guestfwd go with --net user");
	if (n->kind == VM_NET_NONE && n->have_mac)
		return cli_usage_error(cli, "--mac goes with --net");
	if (n->have_mac)
		return 0;
	memcpy(n->mac, mac_prefix, sizeof(mac_prefix));
	if (!name) {
		static const uint8_t qemu_default[3] = { 0x12, 0x34, 0x56 };

		memcpy(n->mac + 3, qemu_default, sizeof(qemu_default));
		return 0;
	}
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	n->mac[3] = (uint8_t)(h >> 16);
	n->mac[4] = (uint8_t)(h >> 8);
	n->mac[5] = (uint8_t)h;
	return 0;
}

int vm_net_open(const struct vm_net *n, struct net_backend *out, struct circ_err *err)
{
	if (n->kind == VM_NET_TAP)
		return net_backend_open_tap(n->tap, out, err);
	return net_backend_open_user(&n->user, out, err);
}

/* Appends ",KEY=VALUE" to *s. */
static int append(char **s, const char *key, const char *value)
{
	char *t;

	if (asprintf(&t, "%s,%s=%s", *s, key, value) < 0)
		return -1;
	free(*s);
	*s = t;
	return 0;
}

int vm_net_qemu_args(const struct vm_net *n, char **argv, size_t *n_args, char **owned)
{
	char *netdev = NULL, *device = NULL;
	int rc = -1;

	owned[0] = owned[1] = NULL;
	if (n->kind == VM_NET_NONE) {
		/* QEMU adds a card on its user network unless told not to: hv adds none. */
		argv[(*n_args)++] = "-nic";
		argv[(*n_args)++] = "none";
		return 0;
	}
	if (n->kind == VM_NET_TAP) {
		if (asprintf(&netdev, "tap,id=net0,ifname=%s,script=no,downscript=no", n->tap) < 0)
			return -1;
	} else {
		netdev = strdup("user,id=net0,ipv6=off");
		if (!netdev || (n->user.restrict_guest && append(&netdev, "restrict", "on")))
			goto out;
		/* QEMU's empty host address is every address; circ's is loopback. */
		for (size_t i = 0; i < n->user.n_hostfwd; i++) {
			const struct net_fwd *f = &n->user.hostfwd[i];
			char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN], v[80];

			inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
			inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
			snprintf(v, sizeof(v), "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", host,
			         f->host_port, guest, f->guest_port);
			if (append(&netdev, "hostfwd", v))
				goto out;
		}
		for (size_t i = 0; i < n->user.n_guestfwd; i++) {
			const struct net_fwd *f = &n->user.guestfwd[i];
			char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN], v[80];

			/* QEMU's chardev: one connection, made as QEMU starts (docs/hv.md). */
			inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
			inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
			snprintf(v, sizeof(v), "tcp:%s:%u-tcp:%s:%u", guest, f->guest_port, host,
			         f->host_port);
			if (append(&netdev, "guestfwd", v))
				goto out;
		}
	}
	if (asprintf(&device, "virtio-net-pci,netdev=net0,mac=%02x:%02x:%02x:%02x:%02x:%02x",
	             n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]) < 0) {
		device = NULL;
		goto out;
	}
	argv[(*n_args)++] = "-netdev";
	argv[(*n_args)++] = netdev;
	argv[(*n_args)++] = "-device";
	argv[(*n_args)++] = device;
	owned[0] = netdev;
	owned[1] = device;
	netdev = device = NULL;
	rc = 0;
out:
	free(netdev);
	free(device);
	return rc;
}
