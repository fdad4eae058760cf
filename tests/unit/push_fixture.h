/* SPDX-License-Identifier: MIT */
/*
 * A server with users in this process (circ serve --users, alice with a
 * bcrypt password) and a client state directory with a blank disk "home",
 * for tests of circ push against it.
 */
#ifndef CIRC_TEST_PUSH_FIXTURE_H
#define CIRC_TEST_PUSH_FIXTURE_H

#include <limits.h>
#include <stdint.h>

#include "vdisk/migrate.h"

#define PUSH_DISK_BLOCK 4096
#define PUSH_DISK_SIZE  (16 * PUSH_DISK_BLOCK)

extern const char push_password[], push_passphrase[];

struct push_fixture {
	char repo[PATH_MAX];  /* the server's tree */
	char state[PATH_MAX]; /* the client's */
	char url[64];
	struct server *srv;
	struct push_options po; /* to the server as alice, secrets answered */
};

/* Starts the server on a fresh repo (its uploads through fio, NULL: the system's). */
void push_fixture_start(struct push_fixture *fx, const struct fileio *fio);
void push_fixture_stop(struct push_fixture *fx);
/* Writes a few blocks of home (a different few each round), as a user would. */
void push_fixture_use_disk(struct push_fixture *fx, uint32_t round);

#endif
