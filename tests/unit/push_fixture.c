/* SPDX-License-Identifier: MIT */
#include "tests/unit/push_fixture.h"

#include <crypt.h>
#include <stdio.h>
#include <string.h>

#include "vdisk/disk.h"
#include "server/server.h"
#include "tests/unit/testutil.h"

const char push_password[] = "server password of alice";
const char push_passphrase[] = "alice's passphrase for her key";

static int give_password(void *ctx, const char *user, char *out, size_t n, struct circ_err *err)
{
	(void)ctx;
	(void)user;
	(void)err;
	snprintf(out, n, "%s", push_password);
	return 0;
}

static int give_passphrase(void *ctx, const char *user, bool confirm, char *out, size_t n,
                           size_t *len, struct circ_err *err)
{
	(void)ctx;
	(void)user;
	(void)confirm;
	(void)err;
	snprintf(out, n, "%s", push_passphrase);
	*len = strlen(out);
	return 0;
}

static void write_users(const char *path)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], line[256];
	struct crypt_data cd;
	const char *hash;

	ck_assert_ptr_nonnull(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt)));
	memset(&cd, 0, sizeof(cd));
	hash = crypt_r(push_password, salt, &cd);
	ck_assert(hash && hash[0] == '$');
	snprintf(line, sizeof(line), "alice:%s\n", hash);
	write_file(path, line, strlen(line));
}

void push_fixture_start(struct push_fixture *fx, const struct fileio *fio)
{
	struct server_config cfg = { 0 };
	char users[PATH_MAX];
	struct circ_err err;

	memset(fx, 0, sizeof(*fx));
	test_path(fx->repo, "srv");
	make_dirs(fx->repo);
	test_path(users, "users");
	write_users(users);
	cfg.repo_dir = fx->repo;
	cfg.listen = "127.0.0.1:0";
	cfg.users_file = users;
	cfg.fio = fio;
	ck_assert_msg(server_start(&cfg, &fx->srv, &err) == 0, "%s", err.msg);
	snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%u/", server_port(fx->srv));

	test_path(fx->state, "client");
	make_dirs(fx->state);
	ck_assert_msg(
	    migrate_create_blank(fx->state, "home", PUSH_DISK_SIZE, PUSH_DISK_BLOCK, &err) == 0,
	    "%s", err.msg);
	fx->po.url = fx->url;
	fx->po.user = "alice";
	fx->po.prompt =
	    (struct migrate_prompt){ .password = give_password, .passphrase = give_passphrase };
}

void push_fixture_stop(struct push_fixture *fx)
{
	server_stop(fx->srv);
	fx->srv = NULL;
}

void push_fixture_use_disk(struct push_fixture *fx, uint32_t round)
{
	struct vdisk_options vo = { 0 };
	uint8_t data[PUSH_DISK_BLOCK];
	struct circ_err err;
	struct vdisk *vd;

	ck_assert_msg(vdisk_open(fx->state, "home", &vo, &vd, &err) == 0, "%s", err.msg);
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t b = (round * 5 + i * 3) % (PUSH_DISK_SIZE / PUSH_DISK_BLOCK);

		fill_random(data, sizeof(data), 100 * round + i);
		ck_assert_int_eq(vdisk_write(vd, data, sizeof(data), (uint64_t)b * PUSH_DISK_BLOCK),
		                 0);
	}
	ck_assert_int_eq(vdisk_close(vd), 0);
}
