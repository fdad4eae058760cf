/* SPDX-License-Identifier: MIT */
/*
 * virtio-input as a device model, without KVM: the selectable
 * configuration a driver reads, events delivered one to a buffer, whole
 * reports refused when the queue is full, a guest with no buffers,
 * malformed chains, the status queue; and the VNC keymap.
 */
#include <endian.h>
#include <poll.h>
#include <string.h>

#include "hv/keymap.h"
#include "hv/virtio_input.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

#include <rfb/keysym.h>

struct irig {
	struct guest_mem m;
	struct drv ev, st;
	struct virtq q[2];
	struct virtio_input in;
};

static void irig_init(struct irig *r, enum virtio_input_kind kind)
{
	struct circ_err err;
	const uint64_t base[2] = { 0x1000, 0x5000 };
	struct drv *d[2] = { &r->ev, &r->st };

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(guest_mem_alloc(&r->m, MEM_SIZE, &err), 0);
	for (int i = 0; i < 2; i++) {
		drv_init(d[i], &r->m);
		d[i]->desc = base[i];
		d[i]->avail = base[i] + 0x1000;
		d[i]->used = base[i] + 0x2000;
		memset(gptr(d[i], d[i]->avail, 4), 0, 4);
		memset(gptr(d[i], d[i]->used, 4), 0, 4);
		r->q[i] = (struct virtq){ .size = QSIZE,
			                  .ready = true,
			                  .desc = d[i]->desc,
			                  .avail = d[i]->avail,
			                  .used = d[i]->used };
	}
	r->st.heap = 4ull << 20;
	ck_assert_int_eq(virtio_input_init(&r->in, kind), 0);
}

static void irig_fini(struct irig *r)
{
	virtio_input_destroy(&r->in);
	guest_mem_free(&r->m);
}

/* Selects (select, subsel) and reads the answer: its size, and the union into u. */
static uint8_t cfg(struct irig *r, uint8_t select, uint8_t subsel, uint8_t *u)
{
	uint8_t sel[2] = { select, subsel }, c[VIRTIO_INPUT_CONFIG_LEN];

	virtio_input_config_write(&r->in, 0, sel, 2);
	virtio_input_config_read(&r->in, 0, c, sizeof(c));
	ck_assert_uint_eq(c[0], select);
	ck_assert_uint_eq(c[1], subsel);
	memcpy(u, c + 8, 128);
	return c[2];
}

static bool has_bit(const uint8_t *map, unsigned bit)
{
	return map[bit / 8] >> (bit % 8) & 1;
}

START_TEST(test_config)
{
	struct irig r;
	uint8_t u[128];
	struct virtio_input_devids ids;
	struct virtio_input_absinfo abs;

	irig_init(&r, VIRTIO_INPUT_KEYBOARD);
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ID_NAME, 0, u), strlen("circ keyboard"));
	ck_assert_mem_eq(u, "circ keyboard", strlen("circ keyboard"));
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u), sizeof(ids));
	memcpy(&ids, u, sizeof(ids));
	ck_assert_uint_eq(le16toh(ids.bustype), 0x06);
	ck_assert_uint_gt(cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u), 0);
	ck_assert(has_bit(u, KEY_A) && has_bit(u, KEY_ENTER) && has_bit(u, KEY_LEFTSHIFT));
	ck_assert(!has_bit(u, BTN_LEFT));
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_REP, u), 1);
	/* What a keyboard does not send: size 0, so the driver leaves it out. */
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), 0);
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ABS_INFO, ABS_X, u), 0);
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ID_SERIAL, 0, u), 0);
	ck_assert_uint_eq(cfg(&r, 0x77, 0, u), 0);
	irig_fini(&r);

	irig_init(&r, VIRTIO_INPUT_TABLET);
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ID_NAME, 0, u), strlen("circ tablet"));
	cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u);
	ck_assert(has_bit(u, BTN_LEFT) && has_bit(u, BTN_RIGHT) && has_bit(u, BTN_MIDDLE));
	ck_assert(!has_bit(u, KEY_A));
	ck_assert_uint_gt(cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), 0);
	ck_assert(has_bit(u, ABS_X) && has_bit(u, ABS_Y));
	ck_assert_uint_gt(cfg(&r, VIRTIO_INPUT_CFG_EV_BITS, EV_REL, u), 0);
	ck_assert(has_bit(u, REL_WHEEL));
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y, u), sizeof(abs));
	memcpy(&abs, u, sizeof(abs));
	ck_assert_uint_eq(le32toh(abs.min), 0);
	ck_assert_uint_eq(le32toh(abs.max), VIRTIO_INPUT_ABS_MAX);
	ck_assert_uint_eq(cfg(&r, VIRTIO_INPUT_CFG_ABS_INFO, ABS_PRESSURE, u), 0);
	/* Reads past the configuration's end are zero; writes there change nothing. */
	uint8_t past[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	virtio_input_config_write(&r.in, 2, past, 8);
	virtio_input_config_read(&r.in, VIRTIO_INPUT_CONFIG_LEN - 4, past, 8);
	ck_assert_uint_eq(past[4] | past[5] | past[6] | past[7], 0);
	irig_fini(&r);
}
END_TEST

static struct virtio_input_event ev(uint16_t type, uint16_t code, int32_t value)
{
	return (struct virtio_input_event){ htole16(type), htole16(code),
		                            htole32((uint32_t)value) };
}

static uint64_t give(struct irig *r, uint32_t len)
{
	struct tbuf b = { galloc(&r->ev, len), len, true };

	add_chain(&r->ev, &b, 1);
	return b.gpa;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

START_TEST(test_events)
{
	struct irig r;
	struct virtio_input_event report[3] = { ev(EV_KEY, KEY_A, 1), ev(EV_SYN, SYN_REPORT, 0) };
	struct virtio_input_event got;
	struct virtio_input_stats st;
	uint64_t buf[4];

	irig_init(&r, VIRTIO_INPUT_KEYBOARD);
	ck_assert(!readable(r.in.event_fd));
	ck_assert(virtio_input_send(&r.in, report, 2));
	ck_assert(readable(r.in.event_fd));
	for (int i = 0; i < 4; i++)
		buf[i] = give(&r, 8);
	ck_assert_int_eq(virtio_input_process_events(&r.in, &r.q[VIRTIO_INPUT_EVENTQ], &r.m), 2);
	ck_assert(!r.in.starved);
	ck_assert(!readable(r.in.event_fd)); /* quiet once all is delivered */
	ck_assert_uint_eq(used_elem(&r.ev, 0).len, 8);
	memcpy(&got, gptr(&r.ev, buf[0], 8), 8);
	ck_assert_uint_eq(le16toh(got.type), EV_KEY);
	ck_assert_uint_eq(le16toh(got.code), KEY_A);
	ck_assert_uint_eq(le32toh(got.value), 1);
	memcpy(&got, gptr(&r.ev, buf[1], 8), 8);
	ck_assert_uint_eq(le16toh(got.type), EV_SYN);
	/* Two buffers left, a report of three: two go, one waits for a buffer. */
	report[0] = ev(EV_KEY, KEY_A, 0);
	report[1] = ev(EV_KEY, KEY_B, 1);
	report[2] = ev(EV_SYN, SYN_REPORT, 0);
	ck_assert(virtio_input_send(&r.in, report, 3));
	ck_assert_int_eq(virtio_input_process_events(&r.in, &r.q[VIRTIO_INPUT_EVENTQ], &r.m), 2);
	ck_assert(r.in.starved);
	ck_assert(readable(r.in.event_fd));
	give(&r, 8);
	ck_assert_int_eq(virtio_input_process_events(&r.in, &r.q[VIRTIO_INPUT_EVENTQ], &r.m), 1);
	ck_assert(!readable(r.in.event_fd));
	virtio_input_get_stats(&r.in, &st);
	ck_assert_uint_eq(st.events, 5);
	ck_assert_uint_eq(st.dropped, 0);
	irig_fini(&r);
}
END_TEST

START_TEST(test_full_queue)
{
	struct irig r;
	struct virtio_input_event report[2] = { ev(EV_KEY, KEY_A, 1), ev(EV_SYN, SYN_REPORT, 0) };
	struct virtio_input_stats st;
	unsigned sent = 0;

	irig_init(&r, VIRTIO_INPUT_KEYBOARD);
	/* A guest that never gives buffers: the queue fills, whole reports are refused. */
	while (virtio_input_send(&r.in, report, 2))
		sent++;
	ck_assert_uint_eq(sent, VIRTIO_INPUT_PENDING / 2);
	ck_assert(!virtio_input_send(&r.in, report, 2));
	ck_assert_int_eq(virtio_input_process_events(&r.in, &r.q[VIRTIO_INPUT_EVENTQ], &r.m), 0);
	ck_assert(r.in.starved);
	virtio_input_get_stats(&r.in, &st);
	ck_assert_uint_eq(st.dropped, 4);
	/* A driver that is not running: what waits is dropped. */
	ck_assert_uint_eq(virtio_input_drop(&r.in), VIRTIO_INPUT_PENDING);
	ck_assert(!readable(r.in.event_fd));
	ck_assert(virtio_input_send(&r.in, report, 2));
	irig_fini(&r);
}
END_TEST

START_TEST(test_malformed)
{
	struct irig r;
	struct virtio_input_event report[1] = { ev(EV_KEY, KEY_A, 1) };
	struct virtio_input_stats st;
	struct tbuf b;

	irig_init(&r, VIRTIO_INPUT_KEYBOARD);
	b = (struct tbuf){ galloc(&r.ev, 8), 8, false }; /* readable */
	add_chain(&r.ev, &b, 1);
	b = (struct tbuf){ galloc(&r.ev, 4), 4, true }; /* too small */
	add_chain(&r.ev, &b, 1);
	b = (struct tbuf){ MEM_SIZE - 4, 8, true }; /* past the end of RAM */
	add_chain(&r.ev, &b, 1);
	uint64_t good = give(&r, 8);

	ck_assert(virtio_input_send(&r.in, report, 1));
	ck_assert_int_eq(virtio_input_process_events(&r.in, &r.q[VIRTIO_INPUT_EVENTQ], &r.m), 4);
	for (uint16_t i = 0; i < 3; i++)
		ck_assert_uint_eq(used_elem(&r.ev, i).len, 0);
	ck_assert_uint_eq(used_elem(&r.ev, 3).len, 8);
	ck_assert_uint_eq(le16toh(((struct virtio_input_event *)gptr(&r.ev, good, 8))->code),
	                  KEY_A);
	virtio_input_get_stats(&r.in, &st);
	ck_assert_uint_eq(st.bad_chains, 3);
	ck_assert_uint_eq(st.events, 1);
	irig_fini(&r);
}
END_TEST

START_TEST(test_status_queue)
{
	struct irig r;
	struct virtio_input_stats st;
	struct tbuf b = { 0, 8, false };

	irig_init(&r, VIRTIO_INPUT_KEYBOARD);
	/* The driver's LED events: taken, completed, ignored. */
	for (int i = 0; i < 3; i++) {
		b.gpa = galloc(&r.st, 8);
		add_chain(&r.st, &b, 1);
	}
	ck_assert_int_eq(virtio_input_process_status(&r.in, &r.q[VIRTIO_INPUT_STATUSQ], &r.m), 3);
	ck_assert_uint_eq(used_idx(&r.st), 3);
	virtio_input_get_stats(&r.in, &st);
	ck_assert_uint_eq(st.statuses, 3);
	irig_fini(&r);
}
END_TEST

START_TEST(test_keymap)
{
	ck_assert_uint_eq(keymap_linux_code('a'), KEY_A);
	ck_assert_uint_eq(keymap_linux_code('A'), KEY_A);
	ck_assert_uint_eq(keymap_linux_code('z'), KEY_Z);
	ck_assert_uint_eq(keymap_linux_code('0'), KEY_0);
	ck_assert_uint_eq(keymap_linux_code(')'), KEY_0);
	ck_assert_uint_eq(keymap_linux_code('!'), KEY_1);
	ck_assert_uint_eq(keymap_linux_code(' '), KEY_SPACE);
	ck_assert_uint_eq(keymap_linux_code('~'), KEY_GRAVE);
	ck_assert_uint_eq(keymap_linux_code(XK_Return), KEY_ENTER);
	ck_assert_uint_eq(keymap_linux_code(XK_BackSpace), KEY_BACKSPACE);
	ck_assert_uint_eq(keymap_linux_code(XK_Shift_L), KEY_LEFTSHIFT);
	ck_assert_uint_eq(keymap_linux_code(XK_F12), KEY_F12);
	ck_assert_uint_eq(keymap_linux_code(XK_KP_5), KEY_KP5);
	/* Every printable ASCII character has a key on a US layout. */
	for (uint32_t c = 0x20; c < 0x7f; c++)
		ck_assert_msg(keymap_linux_code(c) != 0, "no key for '%c'", (char)c);
	ck_assert_uint_eq(keymap_linux_code(0x7f), 0);
	ck_assert_uint_eq(keymap_linux_code(0x20ac), 0); /* the euro sign: no key here */
	ck_assert_uint_eq(keymap_linux_code(0xffffffffu), 0);
}
END_TEST

Suite *virtio_input_suite(void)
{
	Suite *s = suite_create("virtio_input");
	TCase *dev = tcase_create("device");

	tcase_add_test(dev, test_config);
	tcase_add_test(dev, test_events);
	tcase_add_test(dev, test_full_queue);
	tcase_add_test(dev, test_malformed);
	tcase_add_test(dev, test_status_queue);
	tcase_add_test(dev, test_keymap);
	suite_add_tcase(s, dev);
	return s;
}
