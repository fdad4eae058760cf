/* SPDX-License-Identifier: MIT */
/*
 * circ run's --display, the same on both VMMs: a screen served over VNC
 * with a keyboard and a tablet, on hv's framebuffer or QEMU's VGA.
 */
#ifndef CIRC_VM_DISPLAY_H
#define CIRC_VM_DISPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/hv.h"
#include "client/cli.h"

#define VM_DISPLAY_PORT     5900
#define VM_DISPLAY_PASS_MAX 128

struct vm_display {
	bool on;
	char addr[16]; /* numeric IPv4 */
	uint16_t port;
	uint32_t width, height;
	const char *password_file; /* --vnc-password-file, else $CIRC_VNC_PASSWORD_FILE */
	char
	    password[VM_DISPLAY_PASS_MAX]; /* read by vm_display_finish; wiped by vm_display_wipe */
	bool have_password;
};

#define VM_DISPLAY_HELP                                                                         \
	"  --display none|vnc[:ADDR:PORT][,WxH]\n"                                              \
	"                       a screen (default WxH 1024x768, 32-bit) served over VNC on\n"   \
	"                       ADDR:PORT (default 127.0.0.1:5900; PORT 5900 or more),\n"       \
	"                       with a virtio keyboard and tablet that the VNC client drives\n" \
	"                       (default none)\n"                                               \
	"  --vnc-password-file FILE\n"                                                          \
	"                       the VNC password (its first 8 characters) in FILE's first\n"    \
	"                       line (default $CIRC_VNC_PASSWORD_FILE); needed, or asked on\n"  \
	"                       the terminal, when ADDR is not loopback\n"

/* Takes --display's argument; 0, or the usage exit status after saying why. */
int vm_display_parse(const struct cli *cli, struct vm_display *d, const char *arg);
/* After all options: reads the password where one is given or needed; 0, or an exit status. */
int vm_display_finish(const struct cli *cli, struct vm_display *d);
/* hv's configuration for it. */
struct hv_display vm_display_hv(const struct vm_display *d);
/*
 * QEMU's arguments for it, appended to argv at *n (at most
 * VM_DISPLAY_QEMU_ARGS); strings it allocates go into owned[0..2], and a
 * password is written into a 0600 file in run_dir. 0, or -1 with err.
 */
#define VM_DISPLAY_QEMU_ARGS 12
CIRC_MUST_CHECK int vm_display_qemu_args(const struct vm_display *d, const char *run_dir,
                                         char **argv, size_t *n, char **owned,
                                         struct circ_err *err);
void vm_display_wipe(struct vm_display *d);

#endif
