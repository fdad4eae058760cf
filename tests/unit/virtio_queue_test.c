/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk's descriptor-chain walk and ring checks, without KVM: the
 * tests play a guest driver (virtio_fixture.h) that publishes malformed
 * chains and unusable rings, and check that each chain completes with an
 * error or with used length 0, that a broken queue stops, and that the
 * device writes nowhere in guest memory but where it may.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hv/guest_mem.h"
#include "hv/virtio_blk.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

/* Device model: malformed chains. Each completes, with an error or with used length 0. */

/* Runs what the driver published, expecting exactly one completion: head, with used length len. */
static void expect_one(struct rig *r, uint32_t head, uint32_t len)
{
	uint16_t before = used_idx(&r->d);
	struct virtq_used_elem e;

	ck_assert_int_eq(rig_run(r), 1);
	ck_assert_uint_eq(used_idx(&r->d), (uint16_t)(before + 1));
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, head);
	ck_assert_uint_eq(e.len, len);
}

/* header, a 512-byte data buffer at data_gpa (device-writable), status: a read of sector 0. */
static uint64_t read_chain(struct rig *r, uint64_t data_gpa, uint32_t data_len)
{
	uint64_t hdr = galloc(&r->d, 16), st = galloc(&r->d, 1);
	struct tbuf b[3] = {
		{ hdr, 16, false },
		{ data_gpa, data_len, true },
		{ st, 1, true },
	};

	put_hdr(&r->d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r->d, st, 1) = SENTINEL;
	add_chain(&r->d, b, 3);
	return st;
}

START_TEST(test_bad_desc_index)
{
	struct rig r;
	uint64_t hdr;

	rig_init(&r, false);
	/*
	 * The table in RAM's last page: an index past it would be read from
	 * the guard page beyond, and fault, rather than pass unnoticed.
	 */
	r.q.desc = r.d.desc = MEM_SIZE - 16 * QSIZE;
	/* A next pointer past the table. */
	hdr = galloc(&r.d, 16);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	/* A head past the table, straight from the avail ring. */
	publish(&r.d, 1000);
	expect_one(&r, 1000, 0);
	publish(&r.d, 0xffff);
	expect_one(&r, 0xffff, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_loop)
{
	struct rig r;
	uint64_t hdr, data;
	struct virtio_blk_stats st;

	rig_init(&r, false);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	/* 0 -> 1 -> 0 -> ...: the walk must give up, not spin or overrun its array. */
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&r.d, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	publish(&r.d, 0);
	allow(&r, data, 512);
	expect_one(&r, 0, 0);
	/* A descriptor that points at itself. */
	set_desc(&r.d, 5, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	publish(&r.d, 5);
	allow(&r, data, 512);
	expect_one(&r, 5, 0);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.bad_chains, 2);
	ck_assert_uint_eq(st.reads, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_buffer_outside_ram)
{
	static const struct {
		uint64_t gpa;
		uint32_t len;
	} bad[] = {
		{ MEM_SIZE + 4096, 512 },      /* beyond RAM */
		{ MEM_SIZE - 256, 512 },       /* straddles the end */
		{ GUEST_MEM_HOLE_START, 512 }, /* in the PCI hole */
		{ GUEST_MEM_HIGH_START, 512 }, /* where high RAM would be */
		{ UINT64_MAX - 100, 512 },     /* wraps around */
		{ 0, 0xffffffffu },            /* longer than RAM */
	};
	struct rig r;

	rig_init(&r, false);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t st = read_chain(&r, bad[i].gpa, bad[i].len), wlen = bad[i].len + 1ull;

		/* The chain's shape is intact, so the status can be reported. */
		allow(&r, st, 1);
		/* Used length: all writable bytes, capped at 32 bits. */
		expect_one(&r, 0, wlen > UINT32_MAX ? UINT32_MAX : (uint32_t)wlen);
		ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);
	}
	/* The last byte of RAM is a fine place for a status byte. */
	{
		uint64_t hdr = galloc(&r.d, 16), data = galloc(&r.d, 512);
		struct tbuf b[3] = {
			{ hdr, 16, false },
			{ data, 512, true },
			{ MEM_SIZE - 1, 1, true },
		};

		put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
		add_chain(&r.d, b, 3);
		allow(&r, data, 512);
		allow(&r, MEM_SIZE - 1, 1);
		expect_one(&r, 0, 513);
		ck_assert_uint_eq(r.m.host[MEM_SIZE - 1], VIRTIO_BLK_S_OK);
	}
	/* A status buffer outside RAM leaves nowhere to report: used length 0. */
	{
		uint64_t hdr = galloc(&r.d, 16), data = galloc(&r.d, 512);
		struct tbuf b[3] = {
			{ hdr, 16, false },
			{ data, 512, true },
			{ MEM_SIZE, 1, true },
		};

		put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
		add_chain(&r.d, b, 3);
		expect_one(&r, 0, 0);
	}
	rig_fini(&r);
}
END_TEST

START_TEST(test_bad_layout)
{
	struct rig r;
	uint64_t hdr, data, extra, st;
	struct tbuf b[4];

	rig_init(&r, false);
	/* A header shorter than 16 bytes. */
	hdr = galloc(&r.d, 8);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	b[0] = (struct tbuf){ hdr, 8, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 3);
	allow(&r, st, 1);
	expect_one(&r, 0, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);

	/* No status byte at all: only a header. */
	hdr = galloc(&r.d, 16);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_FLUSH, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	add_chain(&r.d, b, 1);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(r.w.flushes, 0);

	/* A zero-length writable buffer is no status byte either. */
	hdr = galloc(&r.d, 16);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_FLUSH, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ st, 0, true };
	add_chain(&r.d, b, 2);
	expect_one(&r, 0, 0);

	/* The status in a device-readable buffer: an OUT whose every buffer is readable. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_OUT, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, false };
	b[2] = (struct tbuf){ st, 1, false };
	add_chain(&r.d, b, 3);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);

	/* A readable buffer after a writable one: the status would be in the readable one. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ st, 1, false };
	add_chain(&r.d, b, 3);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);

	/* Readable, writable, readable, writable: the second readable one must stay as is. */
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	extra = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct tbuf){ hdr, 16, false };
	b[1] = (struct tbuf){ data, 512, true };
	b[2] = (struct tbuf){ extra, 512, false };
	b[3] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 4);
	allow(&r, data, 512);
	allow(&r, st, 1);
	expect_one(&r, 0, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);

	/* A header that is device-writable: no readable bytes, so no header. */
	hdr = galloc(&r.d, 16);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	b[0] = (struct tbuf){ hdr, 16, true };
	b[1] = (struct tbuf){ st, 1, true };
	add_chain(&r.d, b, 2);
	allow(&r, hdr, 16);
	allow(&r, st, 1);
	expect_one(&r, 0, 17);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_IOERR);
	rig_fini(&r);
}
END_TEST

START_TEST(test_indirect_not_negotiated)
{
	struct rig r;
	uint64_t table, hdr, data, st;

	rig_init(&r, false);
	ck_assert(!r.q.indirect);
	table = galloc(&r.d, 3 * 16);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 0);
	*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
	put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	set_desc(&r.d, 0, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);
	rig_fini(&r);
}
END_TEST

/* With VIRTIO_RING_F_INDIRECT_DESC negotiated: one good table, then bad ones. */
START_TEST(test_indirect)
{
	struct rig r;
	uint64_t table, hdr, data, st;
	uint8_t src[512], got[512];

	rig_init(&r, false);
	r.q.indirect = true;
	fill_random(src, sizeof(src), 11);
	ck_assert_int_eq(r.w.inner.ops->write(r.w.inner.ctx, src, 512, 3 * 512), 0);

	table = galloc(&r.d, 3 * 16);
	hdr = galloc(&r.d, 16);
	data = galloc(&r.d, 512);
	st = galloc(&r.d, 1);
	put_hdr(&r.d, hdr, VIRTIO_BLK_T_IN, 3);
	put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
	set_desc(&r.d, 7, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 7);
	allow(&r, data, 512);
	allow(&r, st, 1);
	expect_one(&r, 7, 513);
	ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), VIRTIO_BLK_S_OK);
	memcpy(got, gptr(&r.d, data, 512), 512);
	ck_assert_mem_eq(got, src, 512);

	/* Each of these must complete without status (the walk cannot find the chain's end). */
	table = MEM_SIZE - 3 * 16; /* reading past the table would fault on the guard page */
	for (int c = 0; c < 6; c++) {
		uint16_t flags = VIRTQ_DESC_F_INDIRECT;
		uint32_t tlen = 3 * 16;
		uint64_t taddr = table;

		put_desc(&r.d, table, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
		put_desc(&r.d, table, 1, data, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
		put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
		*(uint8_t *)gptr(&r.d, st, 1) = SENTINEL;
		switch (c) {
		case 0: /* nested: a table entry that is itself indirect */
			put_desc(&r.d, table, 1, table, 3 * 16,
			         VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT, 2);
			break;
		case 1: /* a loop inside the table */
			put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
			break;
		case 2: /* a next index past the table's end */
			put_desc(&r.d, table, 2, st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
			break;
		case 3: /* a table length that is not whole descriptors */
			tlen = 40;
			break;
		case 4: /* a table outside RAM */
			taddr = MEM_SIZE - 16;
			break;
		case 5: /* INDIRECT together with NEXT */
			flags |= VIRTQ_DESC_F_NEXT;
			break;
		}
		set_desc(&r.d, 0, taddr, tlen, flags, 1);
		set_desc(&r.d, 1, hdr, 16, 0, 0);
		publish(&r.d, 0);
		allow(&r, data, 512); /* a loop may not get that far, but could */
		expect_one(&r, 0, 0);
		ck_assert_uint_eq(*(uint8_t *)gptr(&r.d, st, 1), SENTINEL);
	}
	/* An empty table. */
	set_desc(&r.d, 0, table, 0, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	/* An indirect descriptor that is not the chain's head. */
	set_desc(&r.d, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&r.d, 1, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(&r.d, 0);
	expect_one(&r, 0, 0);
	rig_fini(&r);
}
END_TEST

/* Rings the device cannot use stop the queue; nothing is consumed or written. */
START_TEST(test_broken_queue)
{
	struct rig r;
	struct treq t;
	struct virtq_chain *c = malloc(sizeof(*c));
	uint16_t idx;

	rig_init(&r, false);
	/* The avail index more than a ring ahead of the device. */
	avail_ring(&r.d)->idx = htole16(QSIZE + 1);
	ck_assert_int_eq(rig_run(&r), 0);
	ck_assert(r.q.broken);
	ck_assert_uint_eq(used_idx(&r.d), 0);
	ck_assert_int_eq(virtq_pop(&r.q, &r.m, c), -EFAULT);
	virtq_reset(&r.q);
	ck_assert_int_eq(virtq_pop(&r.q, &r.m, c), 0);

	/* Rings outside RAM, misaligned, or of a size no split ring can have. */
	for (int i = 0; i < 6; i++) {
		avail_ring(&r.d)->idx = 0;
		r.d.avail_idx = 0;
		virtq_reset(&r.q);
		r.q.size = QSIZE;
		r.q.desc = DESC_GPA;
		r.q.avail = AVAIL_GPA;
		r.q.used = USED_GPA;
		r.q.ready = true;
		switch (i) {
		case 0:
			r.q.desc = MEM_SIZE - 16;
			break;
		case 1:
			r.q.used = MEM_SIZE - 8;
			break;
		case 2:
			r.q.avail = UINT64_MAX - 1;
			break;
		case 3:
			r.q.used = USED_GPA + 2;
			break;
		case 4:
			r.q.size = 100;
			break;
		case 5:
			r.q.size = 0;
			break;
		}
		blk_req(&r.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t);
		idx = r.q.last_avail_idx;
		ck_assert_int_eq(rig_run(&r), 0);
		ck_assert(r.q.broken);
		ck_assert_uint_eq(r.q.last_avail_idx, idx);
		ck_assert_uint_eq(status_of(&r.d, &t), SENTINEL);
		ck_assert_uint_eq(r.w.flushes, 0);
	}
	free(c);
	rig_fini(&r);
}
END_TEST

Suite *virtio_queue_suite(void)
{
	Suite *s = suite_create("virtio-queue");
	TCase *bad = tcase_create("malformed");

	tcase_set_timeout(bad, 30);
	tcase_add_test(bad, test_bad_desc_index);
	tcase_add_test(bad, test_loop);
	tcase_add_test(bad, test_buffer_outside_ram);
	tcase_add_test(bad, test_bad_layout);
	tcase_add_test(bad, test_indirect_not_negotiated);
	tcase_add_test(bad, test_indirect);
	tcase_add_test(bad, test_broken_queue);
	suite_add_tcase(s, bad);
	return s;
}
