/* SPDX-License-Identifier: MIT */
/*
 * The client's state directory:
 *
 *   STATE/cache/                the block cache shared by every disk
 *   STATE/images/NAME/key.pub   the key pinned for image NAME at its first pull
 *   STATE/images/NAME/seen      the highest version of NAME ever accepted
 *   STATE/disks/DISK/disk.conf  image, URLs and base version of DISK
 *   STATE/disks/DISK/manifest.N the signed manifest of version N, DISK's base
 *   STATE/disks/DISK/overlay.*  DISK's local writes
 *   STATE/disks/DISK/stats      what DISK fetched, cache hits and misses
 *
 * Everything read back from here is checked as if it came from the network.
 */
#ifndef CIRC_STATE_H
#define CIRC_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/fetch.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"
#include "vdisk/ukey.h"

#define STATE_MAX_MIRRORS        8
#define STATE_DEFAULT_CACHE_SIZE (4ull << 30)

/*
 * disk.conf. A disk is a stack: a base (a published image version, or a
 * blank disk of a given size), at most one user layer pulled from a server,
 * and the local overlay.
 */
struct disk_conf {
	/* An image base: image, version and its URLs. */
	char image[REPO_NAME_MAX + 1];
	char *urls[STATE_MAX_MIRRORS];
	size_t n_urls;
	uint64_t version;
	/* A blank base: reads as zeros. */
	bool blank;
	uint64_t size;
	uint32_t block_size;
	/* Where the disk is checked in (NULL: never pushed nor checked out). */
	char *remote;
	char user[REPO_NAME_MAX + 1];
	char remote_disk[REPO_NAME_MAX + 1]; /* its name on the server */
	uint64_t layer; /* the user layer N (STATE/disks/DISK/layer.N), 0: none */
};

struct disk_stats {
	uint64_t fetched_bytes; /* compressed bytes received */
	uint64_t fetched_blocks;
	uint64_t requests;
	uint64_t hits, misses; /* block cache lookups */
	uint64_t overlay_bytes;
};

/*
 * Long work's progress, from the calling thread: what is the step
 * ("manifest", "blocks"); bytes says whether done and total count bytes
 * (else blocks); total 0 when not known.
 */
typedef void (*state_progress_fn)(void *ctx, const char *what, bool bytes, uint64_t done,
                                  uint64_t total);

/* Client-side network settings shared by pull, update and mounts. */
struct state_net {
	const char *const *extra_mirrors; /* tried after the disk's own URLs */
	size_t n_extra;
	long timeout_ms;
	state_progress_fn progress; /* NULL: quiet (pull and update report through it) */
	void *progress_ctx;
};

/* Reports repo's downloads (a manifest) as net's step `what`, or stops (net NULL). */
void state_report_downloads(struct repo *repo, const struct state_net *net);

/*
 * STATE/config: settings of the state directory, "key value" lines. The one
 * key so far: cache-size, the bound of the shared block cache in bytes.
 */
#define STATE_CONFIG_CACHE_SIZE "cache-size"
CIRC_MUST_CHECK int state_config_get(const char *state, const char *key, uint64_t *value,
                                     struct circ_err *err);
CIRC_MUST_CHECK int state_config_set(const char *state, const char *key, uint64_t value,
                                     struct circ_err *err);
/* The cache's bound: requested if not 0, else the state directory's setting, else the default. */
uint64_t state_cache_bound(const char *state, uint64_t requested);

/* "disks/DISK" below state; the caller frees. */
char *state_disk_dir(const char *state, const char *disk);
char *state_cache_dir(const char *state);
bool state_disk_name_valid(const char *disk);
/* An http:// or https:// URL with a host and no spaces or control characters. */
bool state_url_valid(const char *url);

CIRC_MUST_CHECK int disk_conf_load(const char *disk_dir, struct disk_conf *c, struct circ_err *err);
CIRC_MUST_CHECK int disk_conf_save(const char *disk_dir, const struct disk_conf *c,
                                   struct circ_err *err);
/* The _io forms write through fio (NULL: the system's), as a crash test records it. */
struct fileio;
CIRC_MUST_CHECK int disk_conf_save_io(const struct fileio *fio, const char *disk_dir,
                                      const struct disk_conf *c, struct circ_err *err);
void disk_conf_release(struct disk_conf *c);

/*
 * STATE/disks/DISK/secrets (mode 0600): what a checked-out disk needs to
 * read its user layer without asking again: the user's master key and the
 * server password. The machine holding a checked-out disk holds its plain
 * data anyway (overlay, cache); see docs/migration.md.
 */
#define DISK_PASSWORD_MAX 256
struct disk_secrets {
	uint8_t master[UKEY_MASTER_LEN];
	char password[DISK_PASSWORD_MAX + 1];
};
CIRC_MUST_CHECK int disk_secrets_load(const char *disk_dir, struct disk_secrets *s,
                                      struct circ_err *err);
CIRC_MUST_CHECK int disk_secrets_save(const char *disk_dir, const struct disk_secrets *s,
                                      struct circ_err *err);
void disk_secrets_wipe(struct disk_secrets *s);
/* STATE/disks/DISK/layer.N: the user layer's file as the server sent it. */
char *state_layer_path(const char *disk_dir, uint64_t n);

int disk_stats_load(const char *disk_dir, struct disk_stats *st);
int disk_stats_save(const char *disk_dir, const struct disk_stats *st);

/* Paths below the state directory; the caller frees. */
char *state_image_dir(const char *state, const char *name);
char *state_manifest_path(const char *disk_dir, uint64_t version);

/*
 * A "seen" file: the highest version ever accepted (one decimal line), for
 * rollback protection. None yet reads as 0; one that cannot be read or is
 * damaged is an error, never 0, which would let a rollback through.
 */
CIRC_MUST_CHECK int state_seen_read(const char *path, uint64_t *seen, struct circ_err *err);
/* Raises path's version to version (never lowers it). */
CIRC_MUST_CHECK int state_seen_write(const struct fileio *fio, const char *path, uint64_t version,
                                     struct circ_err *err);
/* The highest version of image name ever accepted here, and raising it. */
CIRC_MUST_CHECK int state_seen_load(const char *state, const char *name, uint64_t *seen,
                                    struct circ_err *err);
CIRC_MUST_CHECK int state_seen_raise(const char *state, const char *name, uint64_t version,
                                     struct circ_err *err);
CIRC_MUST_CHECK int state_seen_raise_io(const struct fileio *fio, const char *state,
                                        const char *name, uint64_t version, struct circ_err *err);
/*
 * The same for one disk (DISK/seen), raised each time it is opened: a
 * disk.conf naming an older version than the disk was at (an edited or
 * restored state directory) is refused. Blank and checked-out disks pass:
 * a check-out pins its own base.
 */
CIRC_MUST_CHECK int state_disk_check_version(const char *disk_dir, const struct disk_conf *c,
                                             struct circ_err *err);
/* Stores a verified manifest's exact bytes as DISK's manifest.N. */
CIRC_MUST_CHECK int state_write_manifest(const char *disk_dir, uint64_t version,
                                         const struct buf *raw, struct circ_err *err);
CIRC_MUST_CHECK int state_write_manifest_io(const struct fileio *fio, const char *disk_dir,
                                            uint64_t version, const struct buf *raw,
                                            struct circ_err *err);

/* The key pinned for image name, and its verified local manifest for DISK. */
CIRC_MUST_CHECK int state_load_pinned_key(const char *state, const char *name, struct key **out,
                                          struct circ_err *err);
CIRC_MUST_CHECK int state_load_disk_manifest(const char *disk_dir, const struct key *pub,
                                             const struct disk_conf *c, struct manifest *m,
                                             struct circ_err *err);

/*
 * Takes DISK's lock (held by a mount, an update or a VM using it) without
 * waiting: returns the descriptor that holds it, or -1 naming the cause.
 */
CIRC_MUST_CHECK int state_lock_disk(const char *disk_dir, struct circ_err *err);

/* Opens the repo behind a disk: its URLs, then the extra mirrors. */
CIRC_MUST_CHECK int state_open_repo(const struct disk_conf *c, const struct state_net *net,
                                    struct repo **out, struct circ_err *err);

/*
 * circ pull: creates DISK tracking image name at urls, pinning key_path for
 * the image (or checking it against the key pinned before).
 */
CIRC_MUST_CHECK int state_pull(const char *state, const char *disk, const char *const *urls,
                               size_t n_urls, const char *name, const char *key_path,
                               const struct state_net *net, uint64_t *version,
                               struct circ_err *err);

/*
 * The same at version want (0: the newest), whose manifest file must hash to
 * want_sha256 if given: the base a user layer was made over.
 */
CIRC_MUST_CHECK int state_pull_at(const char *state, const char *disk, const char *const *urls,
                                  size_t n_urls, const char *name, const char *key_path,
                                  const struct state_net *net, uint64_t want,
                                  const uint8_t want_sha256[32], uint64_t *version,
                                  struct circ_err *err);

enum update_overlay {
	UPDATE_REFUSE_OVERLAY,
	UPDATE_KEEP_OVERLAY,
	UPDATE_DISCARD_OVERLAY
};

struct update_result {
	uint64_t from, to;
	uint64_t fetched_bytes, fetched_blocks, changed_blocks;
};

struct update_options {
	enum update_overlay mode;
	const struct state_net *net;
	uint64_t cache_size;      /* 0: the state directory's */
	const struct fileio *fio; /* the cache's and the switch's writes; NULL: the system's */
};

/*
 * circ update: moves DISK to the newest signed version, fetching the blocks
 * that changed and are not cached yet (or not whole: a cut may tear them).
 */
CIRC_MUST_CHECK int state_update(const char *state, const char *disk,
                                 const struct update_options *o, struct update_result *res,
                                 struct circ_err *err);
/*
 * The base switch of circ update, once every changed block is cached and
 * synced: DISK (at disk_dir, on conf's image at version `from`) moves to
 * version `to`, whose verified manifest is raw. drop_overlay removes the
 * local writes first. Each step is atomic and durable before the next, so a
 * power cut anywhere leaves the disk on the old version (its writes kept, or
 * gone when asked) or whole on the new one, and the image's highest seen
 * version never passes a version the disk can open.
 */
CIRC_MUST_CHECK int state_switch_base(const struct fileio *fio, const char *state,
                                      const char *disk_dir, const struct disk_conf *conf,
                                      uint64_t from, uint64_t to, const struct buf *raw,
                                      bool drop_overlay, struct circ_err *err);

#endif
