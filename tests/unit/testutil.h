/* SPDX-License-Identifier: MIT */
/* Shared helpers for the Check unit tests: scratch directories and files. */
#ifndef CIRC_TESTUTIL_H
#define CIRC_TESTUTIL_H

#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"
#include "vdisk/key.h"

/* Asserts that a failed call's message names its cause. */
#define ck_assert_err_has(err, needle)                                                          \
	ck_assert_msg(strstr((err)->msg, (needle)) != NULL, "error '%s' does not mention '%s'", \
	              (err)->msg, (needle))

/*
 * Gives every test of tc a fresh directory, test_dir(). The directories
 * live under one root made in the parent process, so they are removed
 * even when a forked test dies before its own clean-up runs.
 */
void tcase_add_scratch(TCase *tc);
const char *test_dir(void);
/* out = test_dir()/name */
void test_path(char out[PATH_MAX], const char *name);

int rm_rf(const char *path);
void write_file(const char *path, const void *data, size_t len);
void read_file(const char *path, struct buf *out);
void make_dirs(const char *path);

/* Generates test_dir()/name.{key,pub} and loads both halves. */
void test_keypair(const char *name, struct key **priv, struct key **pub);

/*
 * The keys the signed-format suites use: a publisher's ("signer") and
 * another's ("stranger"), made by test_keys_setup, a checked fixture, after
 * the scratch directory's.
 */
extern struct key *signer, *signer_pub, *stranger, *stranger_pub;
void test_keys_setup(void);
void test_keys_teardown(void);

/* Deterministic bytes that zstd cannot shrink much, different per seed. */
void fill_random(void *p, size_t len, uint64_t seed);

#endif
