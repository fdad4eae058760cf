/* SPDX-License-Identifier: MIT */
#include "tests/unit/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch_root[PATH_MAX];
static char scratch_dir[PATH_MAX];

static void scratch_root_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	ck_assert(snprintf(scratch_root, sizeof(scratch_root), "%s/circ-unit-XXXXXX",
	                   tmp && *tmp ? tmp : "/tmp") < (int)sizeof(scratch_root));
	ck_assert_msg(mkdtemp(scratch_root) != NULL, "mkdtemp %s: %s", scratch_root,
	              strerror(errno));
}

static void scratch_root_teardown(void)
{
	if (scratch_root[0])
		rm_rf(scratch_root);
	scratch_root[0] = '\0';
}

static void scratch_dir_setup(void)
{
	ck_assert(snprintf(scratch_dir, sizeof(scratch_dir), "%s/t-XXXXXX", scratch_root) <
	          (int)sizeof(scratch_dir));
	ck_assert_msg(mkdtemp(scratch_dir) != NULL, "mkdtemp %s: %s", scratch_dir, strerror(errno));
}

static void scratch_dir_teardown(void)
{
	rm_rf(scratch_dir);
}

void tcase_add_scratch(TCase *tc)
{
	tcase_add_unchecked_fixture(tc, scratch_root_setup, scratch_root_teardown);
	tcase_add_checked_fixture(tc, scratch_dir_setup, scratch_dir_teardown);
}

const char *test_dir(void)
{
	return scratch_dir;
}

void test_path(char out[PATH_MAX], const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", scratch_dir, name);

	ck_assert(n > 0 && n < PATH_MAX);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) ? -1 : 0;
}

int rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	if (len) /* an empty file may come with no buffer at all */
		ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

void read_file(const char *path, struct buf *out)
{
	uint8_t chunk[4096];
	FILE *f = fopen(path, "re");
	size_t n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	buf_reset(out);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_int_eq(buf_append(out, chunk, n), 0);
	ck_assert(!ferror(f));
	fclose(f);
}

void make_dirs(const char *path)
{
	char dir[PATH_MAX];

	ck_assert(snprintf(dir, sizeof(dir), "%s", path) < (int)sizeof(dir));
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir,
		              strerror(errno));
		*p = '/';
	}
	ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir,
	              strerror(errno));
}

void fill_random(void *p, size_t len, uint64_t seed)
{
	uint8_t *b = p;
	/* splitmix64: fixed output per seed, so failures reproduce. */
	uint64_t x = seed;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		for (size_t j = 0; j < 8 && i + j < len; j++)
			b[i + j] = (uint8_t)(z >> (8 * j));
	}
}

void test_keypair(const char *name, struct key **priv, struct key **pub)
{
	char prefix[PATH_MAX], path[PATH_MAX];
	struct circ_err err;

	test_path(prefix, name);
	ck_assert_msg(key_generate(prefix, &err) == 0, "%s", err.msg);
	ck_assert(snprintf(path, sizeof(path), "%s.key", prefix) < (int)sizeof(path));
	ck_assert_msg(key_load_private(path, priv, &err) == 0, "%s", err.msg);
	ck_assert(snprintf(path, sizeof(path), "%s.pub", prefix) < (int)sizeof(path));
	ck_assert_msg(key_load_public(path, pub, &err) == 0, "%s", err.msg);
}

struct key *signer, *signer_pub, *stranger, *stranger_pub;

void test_keys_setup(void)
{
	test_keypair("signer", &signer, &signer_pub);
	test_keypair("stranger", &stranger, &stranger_pub);
}

void test_keys_teardown(void)
{
	key_free(signer);
	key_free(signer_pub);
	key_free(stranger);
	key_free(stranger_pub);
	signer = signer_pub = stranger = stranger_pub = NULL;
}
