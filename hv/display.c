/* SPDX-License-Identifier: MIT */
#include "hv/display.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "hv/device.h"

int display_init(struct display *d, const struct hv_display *cfg, struct circ_err *err)
{
	memset(d, 0, sizeof(*d));
	d->vm_fd = -1;
	return fb_alloc(&d->fb, cfg->width, cfg->height, err);
}

int display_map(struct display *d, int vm_fd, unsigned slot, struct circ_err *err)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = FB_GPA,
		.memory_size = d->fb.size,
		.userspace_addr = (uint64_t)(uintptr_t)d->fb.host,
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return err_sys(err, errno, "mapping the framebuffer");
	d->vm_fd = vm_fd;
	d->slot = slot;
	return 0;
}

int display_attach_input(struct display *d, struct vm *vm, struct circ_err *err)
{
	struct virtio_input_args kbd = { VIRTIO_INPUT_KEYBOARD, &d->keyboard };
	struct virtio_input_args tablet = { VIRTIO_INPUT_TABLET, &d->tablet };

	if (device_attach(vm, &virtio_input_model, &kbd, err) ||
	    device_attach(vm, &virtio_input_model, &tablet, err))
		return -1;
	return 0;
}

/* KVM's log of the framebuffer slot's written pages, cleared as it is read. */
static int fb_dirty(void *ctx, uint64_t *bitmap)
{
	struct display *d = ctx;
	struct kvm_dirty_log log = { .slot = d->slot, .dirty_bitmap = bitmap };

	return ioctl(d->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -1 : 0;
}

static struct virtio_input_event event(uint16_t type, uint16_t code, int32_t value)
{
	return (struct virtio_input_event){ .type = htole16(type),
		                            .code = htole16(code),
		                            .value = htole32((uint32_t)value) };
}

static void on_key(void *ctx, unsigned code, bool down)
{
	struct display *d = ctx;
	struct virtio_input_event ev[2] = { event(EV_KEY, (uint16_t)code, down),
		                            event(EV_SYN, SYN_REPORT, 0) };

	if (code >= KEY_CNT || !virtio_input_send(d->keyboard, ev, 2))
		return;
	if (down)
		d->keys_down[code / 64] |= 1ull << (code % 64);
	else
		d->keys_down[code / 64] &= ~(1ull << (code % 64));
}

/* Scales a pixel coordinate onto the tablet's axis, 0 to VIRTIO_INPUT_ABS_MAX. */
static int32_t axis(unsigned v, uint32_t side)
{
	return (int32_t)((uint64_t)v * VIRTIO_INPUT_ABS_MAX / (side > 1 ? side - 1 : 1));
}

static void on_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
	static const uint16_t codes[3] = { BTN_LEFT, BTN_MIDDLE, BTN_RIGHT };
	struct display *d = ctx;
	struct virtio_input_event ev[8];
	unsigned n = 0;

	ev[n++] = event(EV_ABS, ABS_X, axis(x, d->fb.width));
	ev[n++] = event(EV_ABS, ABS_Y, axis(y, d->fb.height));
	for (unsigned b = 0; b < 3; b++)
		if ((buttons ^ d->buttons) >> b & 1)
			ev[n++] = event(EV_KEY, codes[b], (int32_t)(buttons >> b & 1));
	if (wheel)
		ev[n++] = event(EV_REL, REL_WHEEL, wheel);
	ev[n++] = event(EV_SYN, SYN_REPORT, 0);
	/* Buttons the guest never heard of are sent again with the next report. */
	if (virtio_input_send(d->tablet, ev, n)) {
		d->buttons = buttons;
		d->x = x;
		d->y = y;
	}
}

/*
 * A client left: keys and buttons it held are let go, or the guest would
 * repeat a key (or keep Ctrl down) until the next client came.
 */
static void on_release_all(void *ctx)
{
	struct display *d = ctx;

	for (unsigned code = 0; code < KEY_CNT; code++)
		if (d->keys_down[code / 64] >> (code % 64) & 1)
			on_key(d, code, false);
	if (d->buttons)
		on_pointer(d, d->x, d->y, 0, 0);
}

int display_start(struct display *d, const struct hv_display *cfg, struct circ_err *err)
{
	struct vnc_config vc = { .addr = cfg->vnc_addr,
		                 .port = cfg->vnc_port,
		                 .password = cfg->vnc_password };
	struct vnc_input in = {
		.key = on_key, .pointer = on_pointer, .release_all = on_release_all, .ctx = d
	};

	return vnc_start(&vc, &d->fb, d->vm_fd >= 0 ? fb_dirty : NULL, d, &in, &d->vnc, err);
}

void display_report(const struct display *d, FILE *f)
{
	vnc_report(d->vnc, f);
}

void display_stop(struct display *d)
{
	vnc_stop(d->vnc);
}

void display_free(struct display *d)
{
	vnc_free(d->vnc);
	d->vnc = NULL;
	fb_free(&d->fb);
}
