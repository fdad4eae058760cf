/* SPDX-License-Identifier: MIT */
#include "blockfs/cache.h"
#include "blockfs/file.h"
#include "blockfs/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define TMP_PREFIX    ".tmp-"
#define TOUCH_EVERY_S 60  /* how stale an entry's mtime (its LRU age on disk) may get */
#define STALE_TMP_S   600 /* a temporary this old belongs to no live writer */

struct cache_entry {
	struct block_id id; /* first: the tree compares entries by it */
	uint64_t size;
	time_t touched;
	bool verified; /* its SHA-256 was checked by this process */
	uint64_t gen;  /* changes with every put: a read's drop leaves a newer put alone */
	struct cache_entry *newer, *older;
};

struct cache {
	int dirfd;
	const struct fileio *fio; /* what a crash can expose goes through it */
	char *path;               /* to make the directory again if it is deleted under us */
	FILE *log;
	uint64_t max_bytes;
	unsigned tmp_seq;
	bool full; /* the last put found no room: fetching ahead would be fetching twice */

	pthread_mutex_t lock; /* guards everything below */
	void *tree;           /* tsearch tree of struct cache_entry, by ID */
	struct cache_entry *newest, *oldest;
	struct cache_stats stats;
	uint64_t gen;
};

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(a, b, BLOCK_ID_LEN);
}

static void path_of(const struct block_id *id, char out[BLOCK_ID_HEX_LEN + 4])
{
	char hex[BLOCK_ID_HEX_LEN + 1];

	block_id_to_hex(id, hex);
	snprintf(out, BLOCK_ID_HEX_LEN + 4, "%.2s/%s", hex, hex);
}

static struct cache_entry *lookup(struct cache *c, const struct block_id *id)
{
	struct cache_entry **e = tfind(id, &c->tree, entry_cmp);

	return e ? *e : NULL;
}

static void lru_unlink(struct cache *c, struct cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void lru_push_newest(struct cache *c, struct cache_entry *e)
{
	e->older = c->newest;
	e->newer = NULL;
	if (c->newest)
		c->newest->newer = e;
	c->newest = e;
	if (!c->oldest)
		c->oldest = e;
}

static void entry_remove(struct cache *c, struct cache_entry *e)
{
	lru_unlink(c, e);
	tdelete(e, &c->tree, entry_cmp);
	c->stats.bytes -= e->size;
	c->stats.entries--;
	free(e);
}

/* Inserts (or refreshes) an entry; returns it, or NULL without memory. */
static struct cache_entry *entry_add(struct cache *c, const struct block_id *id, uint64_t size,
                                     time_t touched, bool verified)
{
	struct cache_entry *e = lookup(c, id);

	if (e) {
		lru_unlink(c, e);
		lru_push_newest(c, e);
		if (e->size != size) {
			/* A fresh put replaces a torn entry: its size is the new one. */
			c->stats.bytes = c->stats.bytes - e->size + size;
			e->size = size;
			e->verified = false;
		}
		e->verified |= verified;
		e->gen = ++c->gen;
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->gen = ++c->gen;
	e->id = *id;
	e->size = size;
	e->touched = touched;
	e->verified = verified;
	if (!tsearch(e, &c->tree, entry_cmp)) {
		free(e);
		return NULL;
	}
	lru_push_newest(c, e);
	c->stats.bytes += size;
	c->stats.entries++;
	return e;
}

/*
 * Evicts least recently used entries until the bound holds, sparing keep.
 * Returns the IDs to unlink (the caller does so outside the lock).
 */
static size_t evict_to(struct cache *c, uint64_t target, const struct cache_entry *keep,
                       struct block_id **victims)
{
	size_t n = 0, cap = 0;

	*victims = NULL;
	while (c->stats.bytes > target && c->oldest && c->oldest != keep) {
		struct cache_entry *e = c->oldest;

		if (n == cap) {
			struct block_id *p = realloc(*victims, (cap ? cap * 2 : 16) * sizeof(*p));

			if (!p)
				break;
			*victims = p;
			cap = cap ? cap * 2 : 16;
		}
		(*victims)[n++] = e->id;
		entry_remove(c, e);
		c->stats.evictions++;
	}
	return n;
}

static size_t evict(struct cache *c, const struct cache_entry *keep, struct block_id **victims)
{
	*victims = NULL;
	return c->max_bytes ? evict_to(c, c->max_bytes, keep, victims) : 0;
}

/*
 * How many bytes must go for len more to leave the file system its floor
 * free: the cache never starves the disk's other users (the overlay first).
 */
static uint64_t floor_shortfall(struct cache *c, size_t len)
{
	struct statvfs vfs;
	uint64_t avail, total, floor;

	if (fstatvfs(c->dirfd, &vfs))
		return 0;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	floor = total / 100 * CACHE_FLOOR_PERCENT;
	if (floor > CACHE_FLOOR_MAX)
		floor = CACHE_FLOOR_MAX;
	return avail >= floor + len ? 0 : floor + len - avail;
}

static void unlink_victims(struct cache *c, struct block_id *victims, size_t n)
{
	char path[BLOCK_ID_HEX_LEN + 4];

	for (size_t i = 0; i < n; i++) {
		path_of(&victims[i], path);
		c->fio->unlink(c->fio->ctx, c->dirfd, path);
	}
	free(victims);
}

struct scanned {
	struct block_id id;
	uint64_t size;
	time_t mtime;
};

static int scanned_cmp(const void *a, const void *b)
{
	const struct scanned *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Lists the entries of one fan-out directory, removing stale temporaries. */
static int scan_subdir(struct cache *c, const char *sub, struct scanned **list, size_t *n,
                       size_t *cap)
{
	int fd = openat(c->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	time_t now = time(NULL);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct block_id id;
		struct stat st;

		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			if (now - st.st_mtime > STALE_TMP_S)
				unlinkat(fd, de->d_name, 0);
			continue;
		}
		if (block_id_from_hex(&id, de->d_name) || strncmp(de->d_name, sub, 2) != 0)
			continue;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 1024;
			struct scanned *p = realloc(*list, ncap * sizeof(*p));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			*list = p;
			*cap = ncap;
		}
		(*list)[(*n)++] = (struct scanned){ id, (uint64_t)st.st_size, st.st_mtime };
	}
	closedir(d);
	return 0;
}

static int cache_scan(struct cache *c)
{
	struct scanned *list = NULL;
	size_t n = 0, cap = 0;
	struct block_id *victims;
	size_t nv;
	int rc = 0;

	for (int i = 0; i < 256 && !rc; i++) {
		char sub[3];

		snprintf(sub, sizeof(sub), "%02x", i);
		rc = scan_subdir(c, sub, &list, &n, &cap);
	}
	if (rc) {
		free(list);
		return rc;
	}
	/* Oldest first, so the newest end up at the head of the LRU list. */
	if (n)
		qsort(list, n, sizeof(*list), scanned_cmp);
	for (size_t i = 0; i < n; i++)
		if (!entry_add(c, &list[i].id, list[i].size, list[i].mtime, false)) {
			rc = -ENOMEM;
			break;
		}
	free(list);
	nv = evict(c, NULL, &victims);
	unlink_victims(c, victims, nv);
	return rc;
}

int cache_open(const char *dir, uint64_t max_bytes, struct cache **out, struct circ_err *err)
{
	return cache_open_io(dir, max_bytes, NULL, out, err);
}

int cache_open_io(const char *dir, uint64_t max_bytes, const struct fileio *fio, struct cache **out,
                  struct circ_err *err)
{
	struct cache *c;
	int rc;

	if (mkdir(dir, 0755) && errno != EEXIST)
		return err_sys(err, errno, "creating cache %s", dir);
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(err, ENOMEM, "out of memory");
	c->max_bytes = max_bytes;
	c->fio = fio ? fio : &fileio_system;
	pthread_mutex_init(&c->lock, NULL);
	c->path = strdup(dir);
	c->dirfd = c->path ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (!c->path)
		errno = ENOMEM;
	if (c->dirfd < 0) {
		err_sys(err, errno, "cache %s", dir);
		cache_close(c);
		return -1;
	}
	rc = cache_scan(c);
	if (rc) {
		err_sys(err, -rc, "reading cache %s", dir);
		cache_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

static void free_entry(void *p)
{
	free(p);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	tdestroy(c->tree, free_entry);
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}

void cache_set_log(struct cache *c, FILE *log)
{
	c->log = log;
}

/*
 * The cache's directory was deleted under a running client (rm -rf of the
 * cache): without this every block fetched would fail to be kept and be
 * fetched again on every read. The directory is made again, the index of
 * entries that went with it forgotten, and the log says so once.
 */
static int recreate(struct cache *c)
{
	struct stat st;
	int fd, rc = 0;

	pthread_mutex_lock(&c->lock);
	if (fstat(c->dirfd, &st) == 0 && st.st_nlink > 0) {
		pthread_mutex_unlock(&c->lock); /* another thread made it again already */
		return 0;
	}
	if (file_mkdirs(c->path, 0755, NULL) ||
	    (fd = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		pthread_mutex_unlock(&c->lock);
		return -EIO;
	}
	/* In place, so that a thread holding dirfd now uses the new directory. */
	if (dup3(fd, c->dirfd, O_CLOEXEC) < 0)
		rc = -errno;
	close(fd);
	tdestroy(c->tree, free_entry);
	c->tree = NULL;
	c->newest = c->oldest = NULL;
	c->stats.bytes = c->stats.entries = 0;
	c->stats.recreated++;
	if (c->log) {
		fprintf(c->log, "circ: the block cache %s was deleted; made again, empty\n",
		        c->path);
		fflush(c->log);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/*
 * Drops the entry of id a read found damaged (generation gen; its file open
 * as fd, or -1 if it would not open), unless another thread put the block
 * again meanwhile: a newer entry, or another file under the name, is whole.
 */
static void drop(struct cache *c, const struct block_id *id, uint64_t gen, int fd)
{
	char path[BLOCK_ID_HEX_LEN + 4];
	struct stat read_st, now_st;
	struct cache_entry *e;
	bool same;

	path_of(id, path);
	pthread_mutex_lock(&c->lock);
	e = lookup(c, id);
	same = e && e->gen == gen;
	if (same)
		entry_remove(c, e);
	c->stats.dropped++;
	c->stats.misses++;
	/* Under the lock: a put renames its file before it takes the lock to add its entry. */
	if (same && fd >= 0 && fstat(fd, &read_st) == 0 &&
	    fstatat(c->dirfd, path, &now_st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    read_st.st_ino == now_st.st_ino && read_st.st_dev == now_st.st_dev)
		c->fio->unlink(c->fio->ctx, c->dirfd, path);
	pthread_mutex_unlock(&c->lock);
}

int cache_read(struct cache *c, const struct block_id *id, size_t block_size, uint64_t off,
               size_t len, void *out)
{
	char path[BLOCK_ID_HEX_LEN + 4];
	struct timespec times[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
	time_t now = time(NULL);
	bool verified, touch = false;
	struct block_id got;
	uint64_t gen;
	struct cache_entry *e;
	uint8_t *whole;
	int fd, rc;

	if (off > block_size || len > block_size - off)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	e = lookup(c, id);
	if (!e) {
		c->stats.misses++;
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	gen = e->gen;
	if (e->size != block_size) {
		/*
		 * One ID has one size (it hashes the bytes): the entry was cut short or
		 * grown by a crash or a hand. Never served; fetched again.
		 */
		pthread_mutex_unlock(&c->lock);
		path_of(id, path);
		fd = openat(c->dirfd, path, O_RDONLY | O_CLOEXEC);
		drop(c, id, gen, fd);
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	lru_unlink(c, e);
	lru_push_newest(c, e);
	verified = e->verified;
	if (now - e->touched > TOUCH_EVERY_S) {
		e->touched = now;
		touch = true;
	}
	pthread_mutex_unlock(&c->lock);

	path_of(id, path);
	fd = openat(c->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		drop(c, id, gen, -1);
		return -ENOENT;
	}
	if (verified) {
		rc = file_pread_full(fd, out, len, off);
		if (rc)
			drop(c, id, gen, fd);
		close(fd);
		if (rc)
			return -ENOENT;
	} else {
		/* First use in this process: the whole entry must hash to its name. */
		whole = malloc(block_size);
		if (!whole) {
			close(fd);
			return -ENOMEM;
		}
		rc = file_pread_full(fd, whole, block_size, 0);
		if (!rc)
			block_id_compute(&got, whole, block_size);
		if (rc || !block_id_equal(&got, id)) {
			free(whole);
			drop(c, id, gen, fd);
			close(fd);
			return -ENOENT;
		}
		close(fd);
		if (len)
			memcpy(out, whole + off, len);
		free(whole);
		pthread_mutex_lock(&c->lock);
		e = lookup(c, id);
		if (e && e->gen == gen)
			e->verified = true;
		pthread_mutex_unlock(&c->lock);
	}
	if (touch)
		utimensat(c->dirfd, path, times, 0);
	pthread_mutex_lock(&c->lock);
	c->stats.hits++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int cache_put(struct cache *c, const struct block_id *id, const void *data, size_t block_size)
{
	char path[BLOCK_ID_HEX_LEN + 4], tmp[64], sub[3];
	struct block_id *victims;
	struct cache_entry *e;
	uint64_t short_by;
	unsigned seq;
	size_t nv;
	int fd, rc = 0;

	path_of(id, path);
	snprintf(sub, sizeof(sub), "%.2s", path);
	short_by = floor_shortfall(c, block_size);
	if (short_by) {
		/*
		 * Room is made from the oldest entries, unless all of them would not
		 * make enough (the file system is full of other things): then this
		 * block is not kept, and neither is the cache emptied for nothing.
		 */
		pthread_mutex_lock(&c->lock);
		nv = c->stats.bytes > short_by
		         ? evict_to(c, c->stats.bytes - short_by, NULL, &victims)
		         : 0;
		if (!nv)
			victims = NULL;
		pthread_mutex_unlock(&c->lock);
		unlink_victims(c, victims, nv);
		if (floor_shortfall(c, block_size)) {
			pthread_mutex_lock(&c->lock);
			c->full = true;
			c->stats.refused++;
			pthread_mutex_unlock(&c->lock);
			return -ENOSPC;
		}
	}
	rc = c->fio->mkdir(c->fio->ctx, c->dirfd, sub, 0755);
	if (rc == -ENOENT && recreate(c) == 0)
		rc = c->fio->mkdir(c->fio->ctx, c->dirfd, sub, 0755);
	if (rc && rc != -EEXIST)
		return rc;
	/*
	 * Not synced: an entry a power cut cuts short or tears fails its hash on
	 * first read and is fetched again (cache_sync where it must last). A
	 * temporary a crash left may hold the name a process of the same PID
	 * (after a reboot, likely) picks: then the next number is tried.
	 */
	fd = -EEXIST;
	for (int tries = 0; fd == -EEXIST && tries < 64; tries++) {
		pthread_mutex_lock(&c->lock);
		seq = c->tmp_seq++;
		c->full = false;
		pthread_mutex_unlock(&c->lock);
		snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%ld-%u", sub, (long)getpid(), seq);
		fd = c->fio->open(c->fio->ctx, c->dirfd, tmp,
		                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return fd;
	rc = c->fio->pwrite(c->fio->ctx, fd, data, block_size, 0);
	fd = c->fio->close(c->fio->ctx, fd);
	if (fd && !rc)
		rc = fd;
	if (!rc)
		rc = c->fio->rename(c->fio->ctx, c->dirfd, tmp, path);
	if (rc) {
		c->fio->unlink(c->fio->ctx, c->dirfd, tmp);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	/* The caller verified these bytes: no need to hash them again on read. */
	e = entry_add(c, id, block_size, time(NULL), true);
	nv = e ? evict(c, e, &victims) : 0;
	pthread_mutex_unlock(&c->lock);
	if (!e)
		return -ENOMEM;
	unlink_victims(c, victims, nv);
	return 0;
}

int cache_verify(struct cache *c, const struct block_id *id, size_t block_size)
{
	return cache_read(c, id, block_size, 0, 0, NULL);
}

int cache_sync(struct cache *c)
{
	return c->fio->syncfs(c->fio->ctx, c->dirfd);
}

bool cache_contains(struct cache *c, const struct block_id *id)
{
	bool found;

	pthread_mutex_lock(&c->lock);
	found = lookup(c, id) != NULL;
	pthread_mutex_unlock(&c->lock);
	return found;
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	pthread_mutex_unlock(&c->lock);
}

bool cache_has_room(struct cache *c)
{
	bool room;

	pthread_mutex_lock(&c->lock);
	room = !c->full;
	pthread_mutex_unlock(&c->lock);
	return room;
}
