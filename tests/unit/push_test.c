/* SPDX-License-Identifier: MIT */
/* circ push against an in-process circ serve --users: what it uploads and what it leaves. */
#include <stdio.h>
#include <string.h>

#include "blockfs/block.h"
#include "vdisk/disk.h"
#include "vdisk/ukey.h"
#include "tests/unit/push_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Writes data at block b of home. */
static void write_block(struct push_fixture *fx, uint32_t b, const uint8_t *data)
{
	struct vdisk_options vo = { 0 };
	struct circ_err err;
	struct vdisk *vd;

	ck_assert_msg(vdisk_open(fx->state, "home", &vo, &vd, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(vdisk_write(vd, data, PUSH_DISK_BLOCK, (uint64_t)b * PUSH_DISK_BLOCK), 0);
	ck_assert_int_eq(vdisk_close(vd), 0);
}

/*
 * Another machine (another libzstd, here another level) seals the same block
 * to other bytes. Meeting that copy on the server, push opens it with the key
 * and leaves it: no 409 that would stop every later push, no upload.
 */
START_TEST(test_copy_sealed_elsewhere_is_kept)
{
	static struct push_fixture fx;
	static uint8_t plain[PUSH_DISK_BLOCK];
	struct buf keys = { 0 }, file = { 0 }, comp = { 0 }, comp2 = { 0 }, sealed2 = { 0 };
	char path[PATH_MAX + 128], keys_path[PATH_MAX + 32], hex[BLOCK_ID_HEX_LEN + 1];
	struct block_encoder *enc;
	struct push_result res;
	struct block_id name;
	struct circ_err err;
	struct ukey *k;

	/* Text compresses: levels differ in what they make of it. */
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] =
		    (uint8_t) "a home disk's text, compressible "[i % 33] ^ (uint8_t)(i / 997);
	push_fixture_start(&fx, NULL);
	push_fixture_use_disk(&fx, 1);
	write_block(&fx, 3, plain);
	ck_assert_msg(migrate_push(fx.state, "home", &fx.po, &res, &err) == 0, "%s", err.msg);

	snprintf(keys_path, sizeof(keys_path), "%s/users/alice/keys", fx.repo);
	read_file(keys_path, &keys);
	ck_assert_msg(ukey_unwrap(keys.data, keys.len, "alice", push_passphrase,
	                          strlen(push_passphrase), &k, &err) == 0,
	              "%s", err.msg);
	ukey_block_name(k, plain, sizeof(plain), &name);
	block_id_to_hex(&name, hex);
	ck_assert(snprintf(path, sizeof(path), "%s/users/alice/blocks/%.2s/%s", fx.repo, hex, hex) <
	          (int)sizeof(path));
	read_file(path, &file);
	ck_assert_msg(ukey_block_open(k, &name, file.data, file.len, &comp, &err) == 0, "%s",
	              err.msg);
	enc = block_encoder_new(19);
	ck_assert_ptr_nonnull(enc);
	ck_assert_int_eq(block_encode(enc, plain, sizeof(plain), &comp2, &err), 0);
	ck_assert(comp2.len != comp.len || memcmp(comp2.data, comp.data, comp.len) != 0);
	ck_assert_int_eq(ukey_block_seal(k, &name, comp2.data, comp2.len, &sealed2, &err), 0);
	write_file(path, sealed2.data, sealed2.len);

	/* The same bytes at another place of the disk: the next check-in names the block. */
	write_block(&fx, 0, plain);
	ck_assert_msg(migrate_push(fx.state, "home", &fx.po, &res, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(res.version, 2);
	buf_free(&file);
	read_file(path, &file);
	ck_assert_msg(file.len == sealed2.len && memcmp(file.data, sealed2.data, file.len) == 0,
	              "the other machine's copy was replaced");
	ck_assert_uint_eq(res.uploaded_blocks, 0);

	push_fixture_stop(&fx);
	block_encoder_free(enc);
	ukey_free(k);
	buf_free(&keys);
	buf_free(&file);
	buf_free(&comp);
	buf_free(&comp2);
	buf_free(&sealed2);
}
END_TEST

Suite *push_suite(void)
{
	Suite *s = suite_create("push");
	TCase *tc = tcase_create("uploads");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_copy_sealed_elsewhere_is_kept);
	suite_add_tcase(s, tc);
	return s;
}
