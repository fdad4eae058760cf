/* SPDX-License-Identifier: MIT */
/*
 * A linear framebuffer that Linux drives with no device model: guest
 * memory at FB_GPA (in the 32-bit hole, below the PCI BARs) that the boot
 * protocol's screen_info describes as an EFI framebuffer, which Debian's
 * built-in efifb takes (and fbcon draws its console on). 32 bits a pixel,
 * XRGB8888: blue in the lowest byte. The VMM maps it into the guest as a
 * memory slot of its own, with KVM's dirty log, and the display reads it
 * in place.
 */
#ifndef CIRC_HV_FB_H
#define CIRC_HV_FB_H

#include <stdint.h>

#include "util/err.h"

#define FB_GPA       0xc0000000u  /* GUEST_MEM_HOLE_START: below PCI_MMIO_START */
#define FB_MAX_BYTES (256u << 20) /* up to PCI_MMIO_START */
#define FB_BPP       4
#define FB_MIN_SIDE  64
#define FB_MAX_SIDE  8192
#define FB_DEFAULT_W 1024
#define FB_DEFAULT_H 768
#define FB_PAGE      4096u

struct fb {
	uint8_t *host; /* the pixels; host + y * stride + x * FB_BPP */
	uint32_t width, height, stride;
	uint64_t size; /* mapped bytes, whole pages */
};

/* Pixels for a width x height screen (FB_MIN_SIDE to FB_MAX_SIDE each), black. */
CIRC_MUST_CHECK int fb_alloc(struct fb *fb, uint32_t width, uint32_t height, struct circ_err *err);
void fb_free(struct fb *fb);
/* Describes fb in a zero page's screen_info (struct boot_params at offset 0). */
void fb_write_screen_info(const struct fb *fb, uint8_t *zero_page);

#endif
