/* SPDX-License-Identifier: MIT */
/*
 * Power cuts, simulated (as SQLite's crash tests do with their test VFS).
 * A crashfs is a struct fileio that performs each operation for real under
 * a root directory and records it. From the record it writes crash images:
 * the files a power cut after any operation could have left.
 *
 * The model: what POSIX promises, and the order of metadata a journaling
 * file system (ext4, XFS) keeps besides:
 * - A file's data and size are durable once the file is synced. Of what came
 *   after its last sync, any subset survives (later writes may survive where
 *   earlier ones did not), each write possibly torn at 512-byte sectors.
 * - A name (a create, rename, removal, mkdir) is durable once its directory
 *   is synced. Of the names not yet synced, a prefix in the order they were
 *   made survives (a journaling file system's order); a name whose directory
 *   did not survive is gone.
 * - syncfs makes everything durable.
 * Files are written through descriptors the crashfs opened; directories
 * are known by what the kernel says a descriptor is open on.
 */
#ifndef CIRC_TEST_CRASHFS_H
#define CIRC_TEST_CRASHFS_H

#include <stddef.h>
#include <stdint.h>

#include "util/fileio.h"

struct crashfs;

/* Records under root, an existing directory whose files are the durable start. */
struct crashfs *crashfs_new(const char *root);
void crashfs_free(struct crashfs *c);
const struct fileio *crashfs_io(struct crashfs *c);

/* Operations recorded so far: a crash point. */
size_t crashfs_now(struct crashfs *c);
/* Files created since the start. */
size_t crashfs_files_created(struct crashfs *c);

/* Writes into dir, an empty directory, what a power cut after op k could leave. */
void crashfs_image(struct crashfs *c, size_t k, uint64_t seed, const char *dir);

/* The next draw from *x: crash points and seeds. */
uint64_t crashfs_draw(uint64_t *x);

/* How many crash images a test checks: CIRC_CRASH_IMAGES, default 1000 (`make stress`: more). */
size_t crashfs_images(void);

#endif
