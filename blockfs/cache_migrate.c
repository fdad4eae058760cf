/* SPDX-License-Identifier: MIT */
/*
 * The cache's older layout, one file per block (CACHE/XX/<64 hex>), moved
 * into packs the first time a newer circ opens it: oldest first, so that the
 * packs' order keeps the files' order of use, each file checked against its
 * name (those files were never checked as a whole), and the old files
 * removed only once their copies are synced. A crash or a kill at any point
 * loses nothing: the files still there are moved again by the next open,
 * and a block moved twice is held once.
 */
#include "blockfs/cache_int.h"
#include "util/file.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".tmp-"
/* Bytes moved between syncs, each followed by the removal of the files moved. */
#define CACHE_MIGRATE_BATCH (64u << 20)

struct old_entry {
	struct block_id id;
	uint64_t size;
	struct timespec mtime;
	uint8_t sub;
};

struct old_list {
	struct old_entry *v;
	size_t n, cap;
	uint64_t bytes;
};

static bool is_fanout(const char *name)
{
	static const char hex[] = "0123456789abcdef";

	return strlen(name) == 2 && strchr(hex, name[0]) && strchr(hex, name[1]);
}

/* Whether CACHE holds a directory of the older layout. */
static bool old_layout_present(struct cache *c)
{
	struct dirent *de;
	bool found = false;
	int fd = dup(c->dirfd);
	DIR *d;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	rewinddir(d);
	while (!found && (de = readdir(d)))
		found = is_fanout(de->d_name) && de->d_type != DT_REG;
	closedir(d);
	return found;
}

static int list_add(struct old_list *l, const struct old_entry *e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct old_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	l->bytes += e->size;
	return 0;
}

/* Lists fan-out directory sub; temporaries (puts a crash cut short) are removed. */
static int list_sub(struct cache *c, unsigned sub, struct old_list *l)
{
	char name[3];
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	snprintf(name, sizeof(name), "%02x", sub);
	fd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (!rc && (de = readdir(d))) {
		struct old_entry e = { .sub = (uint8_t)sub };
		struct stat st;

		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			c->fio->unlink(c->fio->ctx, fd, de->d_name);
			continue;
		}
		if (block_id_from_hex(&e.id, de->d_name) || strncmp(de->d_name, name, 2) != 0)
			continue;
		e.size = (uint64_t)st.st_size;
		e.mtime = st.st_mtim;
		rc = list_add(l, &e);
	}
	closedir(d);
	return rc;
}

static int older_first(const void *a, const void *b)
{
	const struct old_entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	return (x->mtime.tv_nsec > y->mtime.tv_nsec) - (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* Reads entry e whole; 1 if it is the block its name says, 0 if not, -errno. */
static int read_old(struct cache *c, const struct old_entry *e, uint8_t *buf)
{
	char hex[BLOCK_ID_HEX_LEN + 1], rel[BLOCK_ID_HEX_LEN + 4];
	struct block_id got;
	int fd, rc;

	if (!block_size_valid(e->size))
		return 0;
	block_id_to_hex(&e->id, hex);
	snprintf(rel, sizeof(rel), "%02x/%s", e->sub, hex);
	fd = openat(c->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = file_pread_full(fd, buf, e->size, 0);
	close(fd);
	if (rc)
		return rc == -ENODATA ? 0 : rc;
	block_id_compute(&got, buf, e->size);
	return block_id_equal(&got, &e->id);
}

/*
 * Empties and removes the fan-out directories: every block in them is in a
 * pack now (synced) or was damaged, and anything else there is no block.
 */
static void remove_old(struct cache *c)
{
	char name[3];

	for (unsigned sub = 0; sub < 256; sub++) {
		struct dirent *de;
		DIR *d;
		int fd;

		snprintf(name, sizeof(name), "%02x", sub);
		fd = openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			continue;
		}
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				c->fio->unlink(c->fio->ctx, fd, de->d_name);
		closedir(d);
		unlinkat(c->dirfd, name, AT_REMOVEDIR);
	}
}

/* What became of an old file. */
enum old_state {
	OLD_LEFT,
	OLD_MOVED,
	OLD_DAMAGED
};

/* Removes the old files of [from, to) that are moved or damaged (their copies synced). */
static void remove_batch(struct cache *c, const struct old_list *l, const uint8_t *state,
                         size_t from, size_t to)
{
	char hex[BLOCK_ID_HEX_LEN + 1], rel[BLOCK_ID_HEX_LEN + 4];

	for (size_t i = from; i < to; i++) {
		if (state[i] == OLD_LEFT)
			continue;
		block_id_to_hex(&l->v[i].id, hex);
		snprintf(rel, sizeof(rel), "%02x/%s", l->v[i].sub, hex);
		c->fio->unlink(c->fio->ctx, c->dirfd, rel);
	}
}

/*
 * Moves the listed files oldest first, a batch at a time: the batch's
 * copies synced, then its files removed, so that a file system short of
 * room for both layouts gets its space back as it goes. A block a pack
 * holds whole already (moved by a run a crash cut short) is not put again.
 * A put that fails (no room under the floor, an I/O error) stops the move:
 * what is left stays in the older layout and is moved by the next open.
 */
static int migrate_locked(struct cache *c, struct circ_err *err)
{
	struct old_list l = { 0 };
	uint64_t kept = 0, damaged = 0, left = 0, batch = 0;
	int64_t t0 = cache_now_ns();
	uint8_t *buf = NULL, *state = NULL;
	size_t from = 0, i;
	int rc = 0, put_rc = 0;

	for (unsigned sub = 0; sub < 256 && !rc; sub++)
		rc = list_sub(c, sub, &l);
	if (!rc && l.n && (!(buf = malloc(BLOCK_SIZE_MAX)) || !(state = calloc(l.n, 1))))
		rc = -ENOMEM;
	if (rc) {
		free(buf);
		free(l.v);
		return err_sys(err, -rc, "reading the older cache %s", c->path);
	}
	if (!l.n) {
		remove_old(c); /* nothing but what is no block */
		return 0;
	}
	if (c->log) {
		fprintf(
		    c->log,
		    "circ: moving the block cache %s into packed files (%zu blocks, %.1f MiB)\n",
		    c->path, l.n, (double)l.bytes / (1 << 20));
		fflush(c->log);
	}
	qsort(l.v, l.n, sizeof(*l.v), older_first);
	for (i = 0; i < l.n && !put_rc; i++) {
		int ok = read_old(c, &l.v[i], buf);

		if (ok < 0)
			continue; /* unreadable: left where it is */
		if (!ok) {
			state[i] = OLD_DAMAGED;
			damaged++;
		} else if (cache_verify(c, &l.v[i].id, l.v[i].size) == 0 ||
		           (put_rc = cache_put(c, &l.v[i].id, buf, l.v[i].size)) == 0) {
			state[i] = OLD_MOVED;
		}
		batch += l.v[i].size;
		if (!put_rc && (batch >= CACHE_MIGRATE_BATCH || i + 1 == l.n)) {
			/* The copies last a power cut before the files they replace go. */
			rc = cache_sync(c);
			if (rc)
				break;
			remove_batch(c, &l, state, from, i + 1);
			from = i + 1;
			batch = 0;
		}
	}
	free(buf);
	for (i = 0; i < l.n; i++) {
		if (i >= from || state[i] == OLD_LEFT)
			left++;
		else if (state[i] == OLD_MOVED && cache_contains(c, &l.v[i].id))
			kept++;
	}
	if (!left)
		remove_old(c);
	pthread_mutex_lock(&c->lock);
	c->stats.migrated += kept;
	pthread_mutex_unlock(&c->lock);
	if (c->log) {
		fprintf(
		    c->log,
		    "circ: the block cache moved: %ju blocks kept, %ju damaged dropped, %ju past "
		    "the bound, %.2f s\n",
		    (uintmax_t)kept, (uintmax_t)damaged, (uintmax_t)(l.n - kept - damaged - left),
		    (double)(cache_now_ns() - t0) / 1e9);
		if (left)
			fprintf(c->log,
			        "circ: %ju blocks left in the older layout (%s), moved at the next "
			        "start\n",
			        (uintmax_t)left,
			        strerror(put_rc ? -put_rc
			                 : rc   ? -rc
			                        : EIO));
		fflush(c->log);
	}
	free(state);
	free(l.v);
	return 0;
}

int cache_migrate(struct cache *c, struct circ_err *err)
{
	int rc;

	if (!old_layout_present(c))
		return 0;
	/*
	 * On the directory, not on CACHE/lock, which the puts below take and
	 * release: two processes opening an older cache at once move it once.
	 */
	flock(c->dirfd, LOCK_EX);
	rc = old_layout_present(c) ? migrate_locked(c, err) : 0;
	flock(c->dirfd, LOCK_UN);
	return rc;
}
