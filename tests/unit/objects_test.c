/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "blockfs/objects.h"
#include "vdisk/head.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define HEX "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"

static void assert_kind(const char *path, enum repo_object_type type, struct repo_object *o)
{
	ck_assert_msg(repo_object_classify(path, o), "%s refused", path);
	ck_assert_ptr_nonnull(o->kind);
	ck_assert_int_eq(o->kind->type, type);
}

START_TEST(test_kinds_table)
{
	size_t n;
	const struct repo_object_kind *k = repo_object_kinds(&n);

	ck_assert_uint_eq(n, 8);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(k[i].type, (enum repo_object_type)i);
		ck_assert_ptr_eq(repo_object_kind(k[i].type), &k[i]);
		ck_assert_uint_gt(k[i].max_len, 0);
		/* What the users write is theirs: no shared cache may keep it. */
		if (k[i].writer == REPO_WRITER_USER)
			ck_assert_ptr_nonnull(strstr(k[i].cache_control, "private"));
		else
			ck_assert_ptr_nonnull(strstr(k[i].cache_control, "public"));
	}
	ck_assert(repo_object_kind(REPO_OBJ_USER_HEAD)->is_mutable);
	ck_assert(repo_object_kind(REPO_OBJ_POINTER)->is_mutable);
	ck_assert(!repo_object_kind(REPO_OBJ_BLOCK)->is_mutable);
	ck_assert_int_eq(repo_object_kind(REPO_OBJ_USER_BLOCK)->writer, REPO_WRITER_USER);
	ck_assert_int_eq(repo_object_kind(REPO_OBJ_MANIFEST)->writer, REPO_WRITER_PUBLISHER);
	ck_assert_uint_ge(repo_object_kind(REPO_OBJ_USER_BLOCK)->max_len,
	                  repo_object_kind(REPO_OBJ_BLOCK)->max_len + 1 + 16);
	ck_assert_ptr_null(repo_object_kind((enum repo_object_type)99));
}
END_TEST

START_TEST(test_classify_valid)
{
	struct repo_object o;
	struct block_id id;
	char name64[REPO_NAME_MAX + 1], path[REPO_PATH_MAX];

	ck_assert_int_eq(block_id_from_hex(&id, HEX), 0);
	assert_kind("blocks/ab/" HEX, REPO_OBJ_BLOCK, &o);
	ck_assert(block_id_equal(&o.id, &id));
	assert_kind("images/debian-12/7.manifest", REPO_OBJ_MANIFEST, &o);
	ck_assert_str_eq(o.name, "debian-12");
	ck_assert_uint_eq(o.version, 7);
	assert_kind("images/debian-12/latest", REPO_OBJ_POINTER, &o);
	ck_assert_str_eq(o.name, "debian-12");
	ck_assert_uint_eq(o.version, 0);
	assert_kind("catalog", REPO_OBJ_CATALOG, &o);
	ck_assert(o.kind->is_mutable);
	ck_assert_int_eq(o.kind->writer, REPO_WRITER_PUBLISHER);
	ck_assert_str_eq(o.kind->cache_control, "public, max-age=30");
	assert_kind("users/alice/keys", REPO_OBJ_USER_KEYS, &o);
	ck_assert_str_eq(o.user, "alice");
	ck_assert_str_eq(o.name, "");
	assert_kind("users/alice/blocks/ab/" HEX, REPO_OBJ_USER_BLOCK, &o);
	ck_assert_str_eq(o.user, "alice");
	ck_assert(block_id_equal(&o.id, &id));
	assert_kind("users/alice/laptop/12.layer", REPO_OBJ_USER_LAYER, &o);
	ck_assert_str_eq(o.user, "alice");
	ck_assert_str_eq(o.name, "laptop");
	ck_assert_uint_eq(o.version, 12);
	assert_kind("users/alice/laptop/head", REPO_OBJ_USER_HEAD, &o);
	ck_assert_str_eq(o.name, "laptop");
	/* A user may be called like a directory: only disks are restricted. */
	assert_kind("users/blocks/keys", REPO_OBJ_USER_KEYS, &o);
	assert_kind("images/a/9999999999999999999.manifest", REPO_OBJ_MANIFEST, &o);
	ck_assert_uint_eq(o.version, UINT64_C(9999999999999999999));

	memset(name64, 'n', REPO_NAME_MAX);
	name64[REPO_NAME_MAX] = '\0';
	snprintf(path, sizeof(path), "users/%s/%s/1.layer", name64, name64);
	assert_kind(path, REPO_OBJ_USER_LAYER, &o);
	ck_assert_str_eq(o.user, name64);
	ck_assert_str_eq(o.name, name64);
	snprintf(path, sizeof(path), "images/%s/latest", name64);
	assert_kind(path, REPO_OBJ_POINTER, &o);
}
END_TEST

START_TEST(test_classify_refuses)
{
	static const char *const bad[] = {
		"",
		"/",
		"..",
		".lock",
		".tmp-x",
		"/blocks/ab/" HEX,
		"blocks/../blocks/ab/" HEX,
		"blocks/ab/.tmp-" HEX,
		"blocks/AB/AB0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",
		"blocks/ab/AB0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",
		"blocks/ab/ab0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcd",
		"blocks/ac/" HEX,
		"blocks/ba/" HEX,
		"blocks/ab/" HEX "/",
		"blocks/ab/" HEX "0",
		"blocks/ab/ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc",
		"blocks/ab//" HEX,
		"blocks/" HEX,
		"images/a/0.manifest",
		"images/a/01.manifest",
		"images/a/-1.manifest",
		"images/a/+1.manifest",
		"images/a/1.manifest.tmp",
		"images/a/.manifest",
		"images/a/.tmp-1.manifest",
		"images/a/1.MANIFEST",
		"images/a/18446744073709551616.manifest",
		"images/a/latest/",
		"images/a/latest.tmp",
		"images/a/",
		"images/a",
		"images//latest",
		"images/a//latest",
		"images/.tmp-x/latest",
		"images/../latest",
		"images/a/b/latest",
		"users/a/../b/head",
		"users/u/blocks/head",
		"users/u/keys/head",
		"users/u/keys/",
		"users/u/blocks",
		"users/u/blocks/",
		"users/u/blocks/ab",
		"users/u/blocks/ac/" HEX,
		"users/u/blocks/ab/" HEX "/",
		"users/u/",
		"users/u",
		"users/",
		"users//keys",
		"users/.u/keys",
		"users/u//head",
		"users/u/d/head/",
		"users/u/d/.head",
		"users/u/.d/head",
		"users/u/d/0.layer",
		"users/u/d/01.layer",
		"users/u/d/1.manifest",
		"users/u/d/latest",
		"users/u/d/keys",
		"users/u/d/x/head",
		"users/u/d/1.layer/",
		"users/u/d/.tmp-1.layer",
		"users/u/d/1.layer.tmp",
		"users/u/d",
		"users/u/d/",
		"user/u/keys",
		"other/x",
		"catalog/",
		"catalog.tmp",
		"/catalog",
		".tmp-catalog",
		"Catalog",
		"images/catalog",
		"images/a/catalog",
	};
	struct repo_object o;
	char name65[REPO_NAME_MAX + 2], path[REPO_PATH_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!repo_object_classify(bad[i], &o), "'%s' classified", bad[i]);
	memset(name65, 'n', REPO_NAME_MAX + 1);
	name65[REPO_NAME_MAX + 1] = '\0';
	snprintf(path, sizeof(path), "images/%s/latest", name65);
	ck_assert(!repo_object_classify(path, &o));
	snprintf(path, sizeof(path), "users/%s/keys", name65);
	ck_assert(!repo_object_classify(path, &o));
	snprintf(path, sizeof(path), "users/u/%s/head", name65);
	ck_assert(!repo_object_classify(path, &o));
	snprintf(path, sizeof(path), "users/u/%s/1.layer", name65);
	ck_assert(!repo_object_classify(path, &o));
}
END_TEST

START_TEST(test_user_paths)
{
	struct repo_object o;
	struct block_id id;
	char path[REPO_PATH_MAX];

	ck_assert(repo_user_disk_name_valid("laptop"));
	ck_assert(!repo_user_disk_name_valid("blocks"));
	ck_assert(!repo_user_disk_name_valid("keys"));
	ck_assert(!repo_user_disk_name_valid(".."));
	ck_assert(!repo_user_disk_name_valid(""));
	/* Every path the client builds is one the server classifies back to it. */
	repo_user_keys_path("alice", path);
	ck_assert_str_eq(path, "users/alice/keys");
	assert_kind(path, REPO_OBJ_USER_KEYS, &o);
	ck_assert_int_eq(block_id_from_hex(&id, HEX), 0);
	repo_user_block_path("alice", &id, path);
	ck_assert_str_eq(path, "users/alice/blocks/ab/" HEX);
	assert_kind(path, REPO_OBJ_USER_BLOCK, &o);
	ck_assert(block_id_equal(&o.id, &id));
	repo_user_layer_path("alice", "laptop", 42, path);
	ck_assert_str_eq(path, "users/alice/laptop/42.layer");
	assert_kind(path, REPO_OBJ_USER_LAYER, &o);
	ck_assert_uint_eq(o.version, 42);
	repo_user_head_path("alice", "laptop", path);
	ck_assert_str_eq(path, "users/alice/laptop/head");
	assert_kind(path, REPO_OBJ_USER_HEAD, &o);
}
END_TEST

static void fill_head(struct user_head *h, bool held)
{
	memset(h, 0, sizeof(*h));
	h->version = 42;
	for (int i = 0; i < 32; i++)
		h->layer_sha256[i] = (uint8_t)(i * 7 + 1);
	if (!held)
		return;
	h->held = true;
	snprintf(h->machine, sizeof(h->machine), "0123456789abcdef0123456789abcdef");
	snprintf(h->host, sizeof(h->host), "desk-1.example_org");
	h->since = 1700000000;
	snprintf(h->token, sizeof(h->token), "fedcba9876543210fedcba9876543210");
}

static void head_round_trip(bool held)
{
	struct user_head h, back;
	struct buf text = { 0 };
	struct circ_err err;

	fill_head(&h, held);
	ck_assert_int_eq(head_encode(&h, &text, &err), 0);
	ck_assert_msg(head_parse(text.data, text.len, &back, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(back.version, h.version);
	ck_assert_mem_eq(back.layer_sha256, h.layer_sha256, 32);
	ck_assert(back.held == held);
	ck_assert_str_eq(back.machine, h.machine);
	ck_assert_str_eq(back.host, h.host);
	ck_assert_uint_eq(back.since, h.since);
	ck_assert_str_eq(back.token, h.token);
	buf_free(&text);
}

START_TEST(test_head_round_trip)
{
	struct user_head h;
	struct buf text = { 0 };
	struct circ_err err;

	head_round_trip(true);
	head_round_trip(false);
	fill_head(&h, false);
	ck_assert_int_eq(head_encode(&h, &text, &err), 0);
	ck_assert_uint_eq(text.len, strlen("circ-head 1\nversion 42\nlayer \nholder -\nsince "
	                                   "0\ntoken -\n") +
	                                64);
	ck_assert_mem_eq(text.data, "circ-head 1\nversion 42\nlayer 01080f", 35);
	buf_free(&text);
}
END_TEST

#define LAYER  "layer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
#define HOLDER "holder 0123456789abcdef0123456789abcdef desk-1\n"
#define TOKEN  "token fedcba9876543210fedcba9876543210\n"
#define GOOD   "circ-head 1\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN

START_TEST(test_head_refuses)
{
	static const char *const bad[] = {
		"",
		"circ-head 1\n",
		/* missing line */
		"circ-head 1\nversion 3\n" LAYER HOLDER TOKEN,
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 5\n",
		"version 3\n" LAYER HOLDER "since 5\n" TOKEN,
		/* extra line, trailing bytes, lines out of order */
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN "extra x\n",
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN "\n",
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN "x",
		"circ-head 1\n" LAYER "version 3\n" HOLDER "since 5\n" TOKEN,
		/* no final newline, CRLF, other format */
		"circ-head 1\nversion 3\n" LAYER HOLDER
		"since 5\ntoken fedcba9876543210fedcba9876543210",
		"circ-head 1\r\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 2\nversion 3\n" LAYER HOLDER "since 5\n" TOKEN,
		/* bad hex */
		"circ-head 1\nversion 3\n"
		"layer 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n" HOLDER
		"since 5\n" TOKEN,
		"circ-head 1\nversion 3\n"
		"layer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n" HOLDER
		"since 5\n" TOKEN,
		"circ-head 1\nversion 3\nlayer 0123\n" HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER "holder 0123456789abcdef0123456789abcdeF desk-1\n"
		"since 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER "holder 0123456789abcdef0123456789abcde desk-1\n"
		"since 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER HOLDER
		"since 5\ntoken fedcba9876543210fedcba987654321\n",
		"circ-head 1\nversion 3\n" LAYER HOLDER
		"since 5\ntoken Fedcba9876543210fedcba9876543210\n",
		/* a token without a holder, a holder without a token */
		"circ-head 1\nversion 3\n" LAYER "holder -\nsince 0\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 5\ntoken -\n",
		/* holder's host */
		"circ-head 1\nversion 3\n" LAYER
		"holder 0123456789abcdef0123456789abcdef\nsince 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER
		"holder 0123456789abcdef0123456789abcdef \nsince 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER
		"holder 0123456789abcdef0123456789abcdef a b\nsince 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER
		"holder 0123456789abcdef0123456789abcdef a/b\nsince 5\n" TOKEN,
		/* numbers: zero version, leading zeros, signs, overflow */
		"circ-head 1\nversion 0\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion 03\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion +3\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion -3\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion 3 \n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion  3\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion 18446744073709551616\n" LAYER HOLDER "since 5\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER HOLDER "since 05\n" TOKEN,
		"circ-head 1\nversion 3\n" LAYER HOLDER "since \n" TOKEN,
	};
	struct user_head h;
	struct circ_err err;
	char big[REPO_USER_HEAD_MAX + 2], nul[sizeof(GOOD)];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(head_parse((const uint8_t *)bad[i], strlen(bad[i]), &h, &err) == -1,
		              "case %zu parsed", i);
		ck_assert_int_eq(err.errnum, EBADMSG);
	}
	/* A NUL after the last line, and one inside a line. */
	ck_assert_int_eq(head_parse((const uint8_t *)(GOOD), sizeof(GOOD), &h, &err), -1);
	memcpy(nul, GOOD, sizeof(GOOD));
	nul[strlen("circ-head 1\nversion 3\n" LAYER "holder 0123")] = '\0';
	ck_assert_int_eq(head_parse((const uint8_t *)nul, sizeof(GOOD) - 1, &h, &err), -1);
	/* The well-formed ones these are made from do parse. */
	ck_assert_int_eq(head_parse((const uint8_t *)GOOD, sizeof(GOOD) - 1, &h, &err), 0);
	ck_assert_str_eq(h.host, "desk-1");
	ck_assert_int_eq(
	    head_parse(
	        (const uint8_t *)("circ-head 1\nversion 3\n" LAYER "holder -\nsince 0\ntoken -\n"),
	        strlen("circ-head 1\nversion 3\n" LAYER "holder -\nsince 0\ntoken -\n"), &h, &err),
	    0);
	ck_assert(!h.held);
	memset(big, '\n', sizeof(big));
	ck_assert_int_eq(head_parse((const uint8_t *)big, sizeof(big), &h, &err), -1);
	ck_assert_err_has(&err, "longer");
}
END_TEST

START_TEST(test_head_sanitize_host)
{
	char out[HEAD_HOST_MAX + 1], in[200];

	head_sanitize_host("my host!", out);
	ck_assert_str_eq(out, "my_host_");
	head_sanitize_host("", out);
	ck_assert_str_eq(out, "-");
	head_sanitize_host(NULL, out);
	ck_assert_str_eq(out, "-");
	memset(in, 'a', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	head_sanitize_host(in, out);
	ck_assert_uint_eq(strlen(out), HEAD_HOST_MAX);
	head_sanitize_host("desk-1.example_org", out);
	ck_assert_str_eq(out, "desk-1.example_org");
}
END_TEST

Suite *objects_suite(void)
{
	Suite *s = suite_create("objects");
	TCase *paths = tcase_create("paths");
	TCase *head = tcase_create("head");

	tcase_add_test(paths, test_kinds_table);
	tcase_add_test(paths, test_classify_valid);
	tcase_add_test(paths, test_classify_refuses);
	tcase_add_test(paths, test_user_paths);
	suite_add_tcase(s, paths);
	tcase_add_test(head, test_head_round_trip);
	tcase_add_test(head, test_head_refuses);
	tcase_add_test(head, test_head_sanitize_host);
	suite_add_tcase(s, head);
	return s;
}
