/* SPDX-License-Identifier: MIT */
#include "client/vm_display.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "hv/fb.h"
#include "client/secret.h"

/* Digits only, no sign or blank, at most max; the end in *end. */
static int parse_uint(const char *s, const char *stop, unsigned long max, unsigned long *out,
                      const char **end)
{
	unsigned long v = 0;
	const char *p = s;

	for (; p < stop && *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -1;
	}
	if (p == s)
		return -1;
	*out = v;
	*end = p;
	return 0;
}

/* "ADDR:PORT" into d; "localhost" is 127.0.0.1. */
static int parse_listen(struct vm_display *d, const char *s, size_t len)
{
	const char *colon = memrchr(s, ':', len), *end;
	char addr[sizeof(d->addr)];
	unsigned long port;
	struct in_addr a;

	if (!colon || (size_t)(colon - s) >= sizeof(addr))
		return -1;
	memcpy(addr, s, (size_t)(colon - s));
	addr[colon - s] = 0;
	if (!strcmp(addr, "localhost"))
		strcpy(addr, "127.0.0.1");
	if (inet_pton(AF_INET, addr, &a) != 1)
		return -1;
	/* 5900 and up on both VMMs: QEMU numbers its VNC displays from there. */
	if (parse_uint(colon + 1, s + len, 65535, &port, &end) || end != s + len ||
	    port < VM_DISPLAY_PORT)
		return -1;
	memcpy(d->addr, addr, sizeof(addr));
	d->port = (uint16_t)port;
	return 0;
}

int vm_display_parse(const struct cli *cli, struct vm_display *d, const char *arg)
{
	const char *size, *end;
	size_t listen_len;
	unsigned long w, h;

	if (!strcmp(arg, "none")) {
		d->on = false;
		return 0;
	}
	if (strncmp(arg, "vnc", 3) || (arg[3] && arg[3] != ':' && arg[3] != ','))
		goto bad;
	d->on = true;
	strcpy(d->addr, "127.0.0.1");
	d->port = VM_DISPLAY_PORT;
	d->width = FB_DEFAULT_W;
	d->height = FB_DEFAULT_H;
	size = strchr(arg, ',');
	listen_len = size ? (size_t)(size - arg) - 3 : strlen(arg + 3);
	if (arg[3] == ':' && parse_listen(d, arg + 4, listen_len - 1))
		goto bad;
	if (size) {
		const char *stop = size + strlen(size);

		if (parse_uint(size + 1, stop, FB_MAX_SIDE, &w, &end) || *end != 'x' ||
		    parse_uint(end + 1, stop, FB_MAX_SIDE, &h, &end) || end != stop ||
		    w < FB_MIN_SIDE || h < FB_MIN_SIDE)
			return cli_usage_error(cli, "bad display size in '%s' (WxH, %d to %d each)",
			                       arg, FB_MIN_SIDE, FB_MAX_SIDE);
		d->width = (uint32_t)w;
		d->height = (uint32_t)h;
	}
	return 0;
bad:
	return cli_usage_error(
	    cli, "--display is none or vnc[:ADDR:PORT][,WxH] (PORT 5900 or more), not '%s'", arg);
}

int vm_display_finish(const struct cli *cli, struct vm_display *d)
{
	const char *env = getenv("CIRC_VNC_PASSWORD_FILE");
	const char *file = d->password_file ? d->password_file : env && *env ? env : NULL;
	bool loopback = !strncmp(d->addr, "127.", 4);
	struct circ_err err;
	size_t len;

	if (!d->on) {
		if (d->password_file)
			return cli_usage_error(cli, "--vnc-password-file goes with --display vnc");
		return 0;
	}
	if (loopback && !file)
		return 0;
	/* Anyone who can reach ADDR could drive the guest: not without a password. */
	if (secret_read(file, "VNC password: ", false, d->password, sizeof(d->password), &len,
	                &err))
		return cli_fail_err(cli, &err);
	d->have_password = true;
	return 0;
}

struct hv_display vm_display_hv(const struct vm_display *d)
{
	struct hv_display h = { 0 };

	if (!d->on)
		return h;
	h.width = d->width;
	h.height = d->height;
	h.vnc_addr = d->addr;
	h.vnc_port = d->port;
	h.vnc_password = d->have_password ? d->password : NULL;
	return h;
}

/* The password for QEMU's secret object: a file only this user reads, in the run's directory. */
static char *password_file(const struct vm_display *d, const char *run_dir, struct circ_err *err)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/vnc-password", run_dir) < 0) {
		err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, d->password, strlen(d->password)) != (ssize_t)strlen(d->password)) {
		err_sys(err, errno, "writing %s", path);
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

int vm_display_qemu_args(const struct vm_display *d, const char *run_dir, char **argv, size_t *n,
                         char **owned, struct circ_err *err)
{
	char *pw = NULL;

	owned[0] = owned[1] = owned[2] = NULL;
	if (!d->on)
		return 0;
	/* QEMU names a VNC display by its number, port 5900 + N (the parser saw to it). */
	if (d->have_password && !(pw = password_file(d, run_dir, err)))
		return -1;
	if (asprintf(&owned[0], "%s:%u%s", d->addr, d->port - VM_DISPLAY_PORT,
	             pw ? ",password-secret=vncpw" : "") < 0)
		owned[0] = NULL;
	if (asprintf(&owned[1], "VGA,xres=%u,yres=%u", d->width, d->height) < 0)
		owned[1] = NULL;
	if (pw && asprintf(&owned[2], "secret,id=vncpw,file=%s", pw) < 0)
		owned[2] = NULL;
	free(pw);
	if (!owned[0] || !owned[1] || (pw && !owned[2])) {
		for (int i = 0; i < 3; i++) {
			free(owned[i]);
			owned[i] = NULL;
		}
		return err_set(err, ENOMEM, "out of memory");
	}
	/* The secret first: -vnc names it. */
	if (owned[2]) {
		argv[(*n)++] = "-object";
		argv[(*n)++] = owned[2];
	}
	argv[(*n)++] = "-vnc";
	argv[(*n)++] = owned[0];
	argv[(*n)++] = "-vga";
	argv[(*n)++] = "none";
	argv[(*n)++] = "-device";
	argv[(*n)++] = owned[1];
	argv[(*n)++] = "-device";
	argv[(*n)++] = "virtio-keyboard-pci";
	argv[(*n)++] = "-device";
	argv[(*n)++] = "virtio-tablet-pci";
	return 0;
}

void vm_display_wipe(struct vm_display *d)
{
	OPENSSL_cleanse(d->password, sizeof(d->password));
	d->have_password = false;
}
