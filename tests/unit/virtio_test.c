/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk as a device model, without KVM: the tests play the guest
 * driver (virtio_fixture.h), building descriptor tables and rings by hand
 * in a fake guest memory, and check that every request completes as the
 * spec says and that the device writes nowhere in guest memory but the
 * buffers it was given and the used ring. Malformed chains are tested in
 * virtio_queue_test.c, the PCI transport in virtio_pci_test.c.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/blk_backend.h"
#include "hv/virtio_blk.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

/* Submits one request, allowing its writable parts, runs it and checks it completed alone. */
static uint8_t run_req(struct rig *r, uint32_t type, uint64_t sector, const uint32_t *lens,
                       unsigned nd, bool dev_writes, struct treq *t)
{
	uint16_t before = used_idx(&r->d);
	struct virtq_used_elem e;

	blk_req(&r->d, type, sector, lens, nd, dev_writes, t);
	if (dev_writes)
		for (unsigned i = 0; i < nd; i++)
			allow(r, t->data[i], t->dlen[i]);
	allow(r, t->status, 1);
	ck_assert_int_eq(rig_run(r), 1);
	ck_assert_uint_eq(used_idx(&r->d), (uint16_t)(before + 1));
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, t->head);
	ck_assert_uint_eq(e.len, (dev_writes ? t->total : 0) + 1);
	return status_of(&r->d, t);
}

static uint8_t do_write(struct rig *r, uint64_t sector, const uint32_t *lens, unsigned nd,
                        const uint8_t *src)
{
	struct treq t;
	uint8_t st;

	/* Build, fill, then run: run_req would run before the data is in place. */
	blk_req(&r->d, VIRTIO_BLK_T_OUT, sector, lens, nd, false, &t);
	treq_fill(&r->d, &t, src);
	allow(r, t.status, 1);
	ck_assert_int_eq(rig_run(r), 1);
	st = status_of(&r->d, &t);
	return st;
}

static uint8_t do_read(struct rig *r, uint64_t sector, const uint32_t *lens, unsigned nd,
                       uint8_t *dst)
{
	struct treq t;
	uint8_t st = run_req(r, VIRTIO_BLK_T_IN, sector, lens, nd, true, &t);

	treq_collect(&r->d, &t, dst);
	return st;
}

static void disk_bytes(struct rig *r, uint64_t off, void *buf, size_t len)
{
	ck_assert_int_eq(r->w.inner.ops->read(r->w.inner.ctx, buf, len, off), 0);
}

/* Device model: requests. */

START_TEST(test_rw_roundtrip)
{
	static const struct {
		uint64_t sector;
		uint32_t wlens[4], rlens[4];
		unsigned nw, nr;
	} cases[] = {
		{ 0, { 512 }, { 512 }, 1, 1 },
		{ 1, { 4096 }, { 1000, 3096 }, 1, 2 },
		{ 7, { 100, 412, 1024 }, { 1536 }, 3, 1 },
		{ 1000, { 4096, 4096, 4096, 512 }, { 512, 4096, 4096, 4096 }, 4, 4 },
		{ DISK_SECTS - 8, { 1, 511, 2048, 1536 }, { 4096 }, 4, 1 },
		{ DISK_SECTS - 1, { 512 }, { 256, 256 }, 1, 2 },
	};
	struct rig r;

	rig_init(&r, false);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint64_t total = 0;
		uint8_t *src, *dst, *disk;

		for (unsigned i = 0; i < cases[c].nw; i++)
			total += cases[c].wlens[i];
		src = malloc(total);
		dst = malloc(total);
		disk = malloc(total);
		fill_random(src, total, c + 1);
		ck_assert_uint_eq(do_write(&r, cases[c].sector, cases[c].wlens, cases[c].nw, src),
		                  VIRTIO_BLK_S_OK);
		disk_bytes(&r, cases[c].sector * 512, disk, total);
		ck_assert_mem_eq(disk, src, total);
		memset(dst, 0, total);
		ck_assert_uint_eq(do_read(&r, cases[c].sector, cases[c].rlens, cases[c].nr, dst),
		                  VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(dst, src, total);
		free(src);
		free(dst);
		free(disk);
	}
	/* Nothing beside the written ranges moved: sector 10 (case 2 wrote 7..9) is zero. */
	{
		uint8_t z[512], zero[512] = { 0 };

		disk_bytes(&r, 10 * 512, z, sizeof(z));
		ck_assert_mem_eq(z, zero, sizeof(z));
	}
	rig_fini(&r);
}
END_TEST

START_TEST(test_flush)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_FLUSH));
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(r.w.flushes, 1);
	r.w.fail = -EIO;
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.flushes, 2);
	rig_fini(&r);
}
END_TEST

START_TEST(test_get_id)
{
	struct rig r;
	struct treq t;
	uint32_t len = VIRTIO_BLK_ID_BYTES, short_len = 4;
	char id[VIRTIO_BLK_ID_BYTES];

	rig_init(&r, false);
	memcpy(r.be.serial, "serial-0123456789abc", VIRTIO_BLK_ID_BYTES);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &t), VIRTIO_BLK_S_OK);
	memcpy(id, gptr(&r.d, t.data[0], sizeof(id)), sizeof(id));
	ck_assert_mem_eq(id, "serial-0123456789abc", VIRTIO_BLK_ID_BYTES);
	/* A shorter buffer gets what fits and not a byte more (the canary check sees to that). */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_ID, 0, &short_len, 1, true, &t),
	                  VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(gptr(&r.d, t.data[0], 4), "seri", 4);
	/* The memory backend's own serial is NUL-padded. */
	ck_assert_mem_eq(r.w.inner.serial, "circ-memory\0\0\0\0\0\0\0\0", VIRTIO_BLK_ID_BYTES);
	rig_fini(&r);
}
END_TEST

static uint8_t discard_req(struct rig *r, uint64_t sector, uint32_t num, uint32_t flags,
                           unsigned nseg, uint32_t seg_bytes)
{
	struct virtio_blk_discard_write_zeroes seg[2] = {
		{ htole64(sector), htole32(num), htole32(flags) },
		{ htole64(sector), htole32(num), htole32(flags) },
	};
	uint64_t hdr = galloc(&r->d, 16), segs = galloc(&r->d, sizeof(seg)), st = galloc(&r->d, 1);
	struct tbuf b[3] = {
		{ hdr, 16, false },
		{ segs, nseg * seg_bytes, false },
		{ st, 1, true },
	};
	struct virtq_used_elem e;
	uint16_t before = used_idx(&r->d), head;

	put_hdr(&r->d, hdr, VIRTIO_BLK_T_DISCARD, 0);
	memcpy(gptr(&r->d, segs, sizeof(seg)), seg, sizeof(seg));
	*(uint8_t *)gptr(&r->d, st, 1) = SENTINEL;
	head = add_chain(&r->d, b, 3);
	allow(r, st, 1);
	ck_assert_int_eq(rig_run(r), 1);
	e = used_elem(&r->d, before);
	ck_assert_uint_eq(e.id, head);
	ck_assert_uint_eq(e.len, 1);
	return *(uint8_t *)gptr(&r->d, st, 1);
}

START_TEST(test_discard)
{
	struct rig r;
	uint32_t len = 16 * 512;
	uint8_t *src = malloc(len), *got = malloc(len), zero[4096] = { 0 };

	rig_init(&r, false);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_DISCARD));
	fill_random(src, len, 7);
	ck_assert_uint_eq(do_write(&r, 8, &len, 1, src), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(discard_req(&r, 8, 8, 0, 1, 16), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(r.w.discards, 1);
	ck_assert_uint_eq(do_read(&r, 8, &len, 1, got), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(got, zero, 4096);
	ck_assert_mem_eq(got + 4096, src + 4096, 4096);
	/* The unmap flag is what a discard does anyway; other flags are refused. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 1, 16),
	                  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(discard_req(&r, 16, 8, 2, 1, 16), VIRTIO_BLK_S_UNSUPP);
	/* max_discard_seg is 1. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, 0, 2, 16), VIRTIO_BLK_S_UNSUPP);
	/* A torn segment, a range past the end, a range too large. */
	ck_assert_uint_eq(discard_req(&r, 16, 8, 0, 1, 8), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, DISK_SECTS - 4, 8, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, UINT64_MAX / 512, 8, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, 0, VIRTIO_BLK_MAX_DISCARD_SECTORS + 1, 0, 1, 16),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.discards, 2);
	free(src);
	free(got);
	rig_fini(&r);
}
END_TEST

START_TEST(test_read_only)
{
	struct rig r;
	uint32_t len = 1024;
	uint8_t src[1024], got[1024], zero[1024] = { 0 };
	struct virtio_blk_config cfg;

	rig_init(&r, true);
	ck_assert(r.blk.features & (1ull << VIRTIO_BLK_F_RO));
	ck_assert(!(r.blk.features & (1ull << VIRTIO_BLK_F_DISCARD)));
	fill_random(src, sizeof(src), 3);
	ck_assert_uint_eq(do_write(&r, 4, &len, 1, src), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(discard_req(&r, 4, 2, 0, 1, 16), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(r.w.discards, 0);
	disk_bytes(&r, 4 * 512, got, sizeof(got));
	ck_assert_mem_eq(got, zero, sizeof(got));
	ck_assert_uint_eq(do_read(&r, 4, &len, 1, got), VIRTIO_BLK_S_OK);
	virtio_blk_config_read(&r.blk, 0, &cfg, sizeof(cfg));
	ck_assert_uint_eq(le64toh(cfg.capacity), DISK_SECTS);
	rig_fini(&r);
}
END_TEST

START_TEST(test_out_of_range)
{
	struct rig r;
	struct treq t;
	uint32_t one = 512, two = 1024, odd = 500, odd_split[2] = { 256, 200 };
	uint8_t buf[1024] = { 0 };

	rig_init(&r, false);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS - 1, &one, 1, true, &t),
	                  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, DISK_SECTS - 1, &two, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	/* Sectors whose byte offset overflows 64 bits. */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, UINT64_MAX, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 1ull << 55, &one, 1, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, DISK_SECTS, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, UINT64_MAX / 512 + 1, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	/* Data lengths that are not whole sectors. */
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, &odd, 1, true, &t), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, odd_split, 2, true, &t),
	                  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, 0, &odd, 1, buf), VIRTIO_BLK_S_IOERR);
	/* A backend error is an I/O error. */
	r.w.fail = -EIO;
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_IN, 0, &one, 1, true, &t), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_write(&r, 0, &one, 1, buf), VIRTIO_BLK_S_IOERR);
	rig_fini(&r);
}
END_TEST

START_TEST(test_unknown_type)
{
	struct rig r;
	struct treq t;
	uint32_t len = 512;
	struct virtio_blk_stats st;

	rig_init(&r, false);
	ck_assert_uint_eq(run_req(&r, 99, 0, &len, 1, true, &t), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, NULL, 0, true, &t),
	                  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_GET_LIFETIME, 0, &len, 1, true, &t),
	                  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(run_req(&r, 0xffffffffu, 0, NULL, 0, true, &t), VIRTIO_BLK_S_UNSUPP);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.unsupported, 4);
	ck_assert_uint_eq(st.io_errors, 0);
	rig_fini(&r);
}
END_TEST

START_TEST(test_stats)
{
	struct rig r;
	struct treq t;
	uint32_t len = 2048;
	uint8_t buf[2048] = { 0 };
	struct virtio_blk_stats st;

	rig_init(&r, false);
	ck_assert_uint_eq(do_write(&r, 0, &len, 1, buf), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(do_read(&r, 0, &len, 1, buf), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(do_read(&r, DISK_SECTS, &len, 1, buf), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	virtio_blk_get_stats(&r.blk, &st);
	ck_assert_uint_eq(st.reads, 2);
	ck_assert_uint_eq(st.writes, 1);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert_uint_eq(st.read_bytes, 2048);
	ck_assert_uint_eq(st.written_bytes, 2048);
	ck_assert_uint_eq(st.io_errors, 1);
	ck_assert_uint_eq(st.bad_chains, 0);
	rig_fini(&r);
}
END_TEST

/* Device model: the rings. */

/* The avail and used indices are free-running 16-bit counters: 65535 -> 0 is nothing special. */
START_TEST(test_index_wrap)
{
	struct rig r;
	struct treq t[6];
	uint32_t len = VIRTIO_BLK_ID_BYTES;
	const uint16_t start = 65533;

	rig_init(&r, false);
	r.q.last_avail_idx = start;
	r.q.used_idx = start;
	r.d.avail_idx = start;
	avail_ring(&r.d)->idx = htole16(start);
	used_ring(&r.d)->idx = htole16(start);
	for (int i = 0; i < 6; i++) {
		blk_req(&r.d, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &t[i]);
		allow(&r, t[i].data[0], len);
		allow(&r, t[i].status, 1);
	}
	ck_assert_uint_eq(r.d.avail_idx, 3);
	ck_assert_int_eq(rig_run(&r), 6);
	ck_assert_uint_eq(used_idx(&r.d), 3);
	for (int i = 0; i < 6; i++) {
		struct virtq_used_elem e = used_elem(&r.d, (uint16_t)(start + i));

		ck_assert_uint_eq(e.id, t[i].head);
		ck_assert_uint_eq(e.len, len + 1);
		ck_assert_uint_eq(status_of(&r.d, &t[i]), VIRTIO_BLK_S_OK);
	}
	ck_assert_uint_eq(r.q.last_avail_idx, 3);
	rig_fini(&r);
}
END_TEST

START_TEST(test_no_interrupt)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	avail_ring(&r.d)->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	ck_assert_uint_eq(run_req(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t), VIRTIO_BLK_S_OK);
	ck_assert(!virtq_should_interrupt(&r.q, &r.m));
	avail_ring(&r.d)->flags = 0;
	ck_assert(virtq_should_interrupt(&r.q, &r.m));
	rig_fini(&r);
}
END_TEST

/* A queue that is not ready yields nothing, whatever the rings say. */
START_TEST(test_not_ready)
{
	struct rig r;
	struct treq t;

	rig_init(&r, false);
	r.q.ready = false;
	blk_req(&r.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &t);
	ck_assert_int_eq(rig_run(&r), 0);
	ck_assert_uint_eq(status_of(&r.d, &t), SENTINEL);
	rig_fini(&r);
}
END_TEST

/* Backends. */

START_TEST(test_file_backend)
{
	char path[PATH_MAX], missing[PATH_MAX];
	struct blk_backend be;
	struct circ_err err;
	uint8_t buf[4096], got[4096], zero[4096] = { 0 };
	struct stat st;
	int fd;

	test_path(path, "disk.img");
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);

	ck_assert_int_eq(blk_backend_open_file(path, false, &be, &err), 0);
	ck_assert_uint_eq(be.size, 1 << 20);
	ck_assert(!be.read_only);
	ck_assert_mem_eq(be.serial, "disk.img", 8);
	fill_random(buf, sizeof(buf), 5);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, sizeof(buf), 8192), 0);
	ck_assert_int_eq(be.ops->flush(be.ctx), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, got, sizeof(got), 8192), 0);
	ck_assert_mem_eq(got, buf, sizeof(buf));
	ck_assert_int_eq(be.ops->discard(be.ctx, 8192, 4096), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, got, sizeof(got), 8192), 0);
	/* Hole punching zeroes where the file system supports it; else discard is a no-op. */
	ck_assert(!memcmp(got, zero, sizeof(got)) || !memcmp(got, buf, sizeof(buf)));
	/* Reading past the end is an error, not zeros from nowhere. */
	ck_assert_int_eq(be.ops->read(be.ctx, got, 512, (1 << 20) - 256), -EIO);
	blk_backend_close(&be);
	blk_backend_close(&be); /* idempotent */

	ck_assert_int_eq(blk_backend_open_file(path, true, &be, &err), 0);
	ck_assert(be.read_only);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, 512, 0), -EROFS);
	ck_assert_int_eq(be.ops->discard(be.ctx, 0, 512), -EROFS);
	ck_assert_int_eq(be.ops->read(be.ctx, got, 512, 0), 0);
	blk_backend_close(&be);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 1 << 20);

	test_path(missing, "missing.img");
	ck_assert_int_eq(blk_backend_open_file(missing, false, &be, &err), -1);
	ck_assert_err_has(&err, "missing.img");
	ck_assert_int_eq(blk_backend_open_file(test_dir(), true, &be, &err), -1);
	ck_assert_err_has(&err, "neither a file nor a block device");
}
END_TEST

START_TEST(test_memory_backend)
{
	struct blk_backend be;
	uint8_t buf[512];

	ck_assert_int_eq(blk_backend_open_memory(0, &be), -EINVAL);
	ck_assert_int_eq(blk_backend_open_memory(1 << 20, &be), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, buf, 512, (1 << 20) - 512), 0);
	ck_assert_int_eq(be.ops->read(be.ctx, buf, 512, (1 << 20) - 256), -EIO);
	ck_assert_int_eq(be.ops->write(be.ctx, buf, 512, UINT64_MAX - 100), -EIO);
	ck_assert_int_eq(be.ops->discard(be.ctx, 1 << 20, 1), -EIO);
	blk_backend_close(&be);
}
END_TEST

Suite *virtio_suite(void)
{
	Suite *s = suite_create("virtio");
	TCase *blk = tcase_create("virtio-blk");
	TCase *be = tcase_create("backend");

	tcase_set_timeout(blk, 30);
	tcase_add_test(blk, test_rw_roundtrip);
	tcase_add_test(blk, test_flush);
	tcase_add_test(blk, test_get_id);
	tcase_add_test(blk, test_discard);
	tcase_add_test(blk, test_read_only);
	tcase_add_test(blk, test_out_of_range);
	tcase_add_test(blk, test_unknown_type);
	tcase_add_test(blk, test_stats);
	tcase_add_test(blk, test_index_wrap);
	tcase_add_test(blk, test_no_interrupt);
	tcase_add_test(blk, test_not_ready);
	suite_add_tcase(s, blk);

	tcase_add_scratch(be);
	tcase_add_test(be, test_file_backend);
	tcase_add_test(be, test_memory_backend);
	suite_add_tcase(s, be);
	return s;
}
