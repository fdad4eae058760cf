/* SPDX-License-Identifier: MIT */
/* The test guest's display mode (guest.c says what it does). */
#include "guest.h"

/* The virtio-input devices' event queues (16 KiB each) and buffers. */
#define INPUT_RING  0x430000ul
#define INPUT_BUF   0x740000ul
#define INPUT_QSIZE 16u
#define KEY_ENTER   28
#define KEY_X       45

/* display=1: the pattern, then the keyboard's and tablet's events. */
struct input {
	struct vcaps c;
	struct vq q;
	uint64_t buf;
};

static void input_post(struct input *in, uint16_t id, uint16_t idx)
{
	in->q.desc[id] = (struct vq_desc){ in->buf + 8ul * id, 8, 2, 0 };
	in->q.avail[2 + idx % in->q.qsize] = id;
}

static bool input_init(struct input *in, unsigned slot, unsigned index)
{
	uint64_t features;
	uint8_t size;

	if (!virtio_caps(slot, &in->c) || !virtio_negotiate(&in->c, 0, &features) ||
	    !virtio_queue(&in->c, 0, (uint8_t *)(INPUT_RING + index * 0x4000ul), INPUT_QSIZE,
	                  &in->q))
		return false;
	in->buf = INPUT_BUF + index * 0x1000ul;
	virtio_driver_ok(&in->c);
	/* The name, through the selectable configuration. */
	in->c.device[0] = 1; /* VIRTIO_INPUT_CFG_ID_NAME */
	in->c.device[1] = 0;
	size = in->c.device[2];
	puts("virtio-input: ");
	for (uint8_t i = 0; i < size && i < 32; i++)
		putc((char)in->c.device[8 + i]);
	putc('\n');
	for (uint16_t i = 0; i < INPUT_QSIZE; i++)
		input_post(in, i, i);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	in->q.avail[1] = INPUT_QSIZE;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*in->q.notify = 0;
	return true;
}

/* Prints the next event if one came; true when it was Enter let go. */
/* The screen's top 8 rows, white: the answer to x, for the host to see over VNC. */
static void paint_top(const uint8_t *boot_params)
{
	uint32_t w = boot_params[0x12] | boot_params[0x13] << 8;
	uint32_t stride = boot_params[0x24] | boot_params[0x25] << 8;
	uint8_t *fb = (uint8_t *)(uintptr_t)rd32(boot_params + 0x18);

	for (uint32_t y = 0; y < 8; y++)
		for (uint32_t x = 0; x < w; x++)
			((volatile uint32_t *)(fb + (uint64_t)y * stride))[x] = 0xffffff;
}

static bool input_poll(struct input *in, const uint8_t *boot_params)
{
	const volatile uint32_t *elem;
	const volatile uint8_t *ev;
	uint16_t id, type, code;
	uint32_t value;

	if (in->q.used[1] == in->q.next_used)
		return false;
	elem = (const volatile uint32_t *)(in->q.used + 2) + 2 * (in->q.next_used % in->q.qsize);
	id = (uint16_t)(elem[0] % INPUT_QSIZE);
	ev = (const volatile uint8_t *)(in->buf + 8ul * id);
	type = (uint16_t)(ev[0] | ev[1] << 8);
	code = (uint16_t)(ev[2] | ev[3] << 8);
	value =
	    (uint32_t)ev[4] | (uint32_t)ev[5] << 8 | (uint32_t)ev[6] << 16 | (uint32_t)ev[7] << 24;
	if (type != 0) {
		puts("input: ");
		putdec(type);
		putc(' ');
		putdec(code);
		putc(' ');
		putdec(value);
		putc('\n');
	}
	/* The buffer goes back at once, as a driver would. */
	input_post(in, id, in->q.avail[1]);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	in->q.avail[1] = (uint16_t)(in->q.avail[1] + 1);
	in->q.next_used++;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*in->q.notify = 0;
	if (type == 1 && code == KEY_X && value == 1)
		paint_top(boot_params);
	return type == 1 && code == KEY_ENTER && value == 0;
}

void display_main(const uint8_t *boot_params)
{
	uint32_t w = boot_params[0x12] | boot_params[0x13] << 8;
	uint32_t h = boot_params[0x14] | boot_params[0x15] << 8;
	uint32_t stride = boot_params[0x24] | boot_params[0x25] << 8;
	uint8_t *fb = (uint8_t *)(uintptr_t)rd32(boot_params + 0x18);
	struct input in[2];
	unsigned n = 0;

	check(boot_params[0x0f] == 0x70 && boot_params[0x16] == 32 && fb && w && h,
	      "an EFI framebuffer in screen_info");
	for (uint32_t y = 0; y < h; y++) {
		volatile uint32_t *row = (volatile uint32_t *)(fb + (uint64_t)y * stride);

		for (uint32_t x = 0; x < w; x++)
			row[x] = (x & 0xff) << 16 | (y & 0xff) << 8 | ((x + y) & 0xff);
	}
	for (unsigned slot = 0; slot < 32 && n < 2; slot++)
		if (pci_read(slot, 0) == (0x1052u << 16 | 0x1af4u) && input_init(&in[n], slot, n))
			n++;
	check(n == 2, "a keyboard and a tablet");
	puts("display: ");
	putdec(w);
	putc('x');
	putdec(h);
	puts(" ready\n");
	for (bool done = n == 0; !done;)
		for (unsigned i = 0; i < n; i++)
			done |= input_poll(&in[i], boot_params);
	puts("circ test guest: done\n");
	poweroff(boot_params);
}
