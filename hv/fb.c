/* SPDX-License-Identifier: MIT */
#include "hv/fb.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include <asm/bootparam.h>
#include <linux/screen_info.h>

#include "hv/guest_mem.h"
#include "hv/pci.h"

_Static_assert(FB_GPA == GUEST_MEM_HOLE_START, "the framebuffer opens the hole");
_Static_assert((uint64_t)FB_GPA + FB_MAX_BYTES <= PCI_MMIO_START, "below the PCI BARs");
_Static_assert(offsetof(struct boot_params, screen_info) == 0, "screen_info");
_Static_assert(offsetof(struct screen_info, lfb_base) == 0x18, "screen_info layout");
_Static_assert(offsetof(struct screen_info, capabilities) == 0x36, "screen_info layout");

int fb_alloc(struct fb *fb, uint32_t width, uint32_t height, struct circ_err *err)
{
	uint64_t bytes;
	void *p;

	memset(fb, 0, sizeof(*fb));
	if (width < FB_MIN_SIDE || height < FB_MIN_SIDE || width > FB_MAX_SIDE ||
	    height > FB_MAX_SIDE)
		return err_set(err, EINVAL, "a display of %ux%u: each side is %d to %d pixels",
		               width, height, FB_MIN_SIDE, FB_MAX_SIDE);
	bytes = (uint64_t)width * height * FB_BPP;
	bytes = (bytes + FB_PAGE - 1) / FB_PAGE * FB_PAGE;
	if (bytes > FB_MAX_BYTES)
		return err_set(err, EINVAL, "a display of %ux%u needs more than %u MiB", width,
		               height, FB_MAX_BYTES >> 20);
	/* Zero pages until drawn: a display nobody draws on costs no memory. */
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	         -1, 0);
	if (p == MAP_FAILED)
		return err_sys(err, errno, "allocating a %ux%u framebuffer", width, height);
	fb->host = p;
	fb->width = width;
	fb->height = height;
	fb->stride = width * FB_BPP;
	fb->size = bytes;
	return 0;
}

void fb_free(struct fb *fb)
{
	if (fb->host)
		munmap(fb->host, fb->size);
	memset(fb, 0, sizeof(*fb));
}

void fb_write_screen_info(const struct fb *fb, uint8_t *zero_page)
{
	struct screen_info si;

	memset(&si, 0, sizeof(si));
	si.orig_video_isVGA = VIDEO_TYPE_EFI;
	si.lfb_width = (uint16_t)fb->width;
	si.lfb_height = (uint16_t)fb->height;
	si.lfb_depth = 32;
	si.lfb_base = FB_GPA;
	si.lfb_size = (uint32_t)fb->size;
	si.lfb_linelength = (uint16_t)fb->stride;
	si.red_size = si.green_size = si.blue_size = si.rsvd_size = 8;
	si.red_pos = 16;
	si.green_pos = 8;
	si.blue_pos = 0;
	si.rsvd_pos = 24;
	/* No PCI device owns it: skip the quirks that look for one. */
	si.capabilities = VIDEO_CAPABILITY_SKIP_QUIRKS;
	memcpy(zero_page, &si, sizeof(si));
}
