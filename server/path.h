/* SPDX-License-Identifier: MIT */
/* A request's path, decoded, as a path beneath the repository: the server's first check. */
#ifndef CIRC_SERVER_PATH_H
#define CIRC_SERVER_PATH_H

#include <stddef.h>

/*
 * Maps a percent-decoded URL path to a path relative to the repo in out (n
 * bytes), refusing anything that could name a file outside it or a hidden
 * one (the lock, temporaries): no "." or ".." segment, no segment starting
 * with '.', no empty segment but leading slashes, no backslash. Returns 0,
 * or the HTTP status to answer (400, 403, 404).
 */
unsigned server_path_to_rel(const char *url, char *out, size_t n);

#endif
