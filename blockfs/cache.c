/* SPDX-License-Identifier: MIT */
#include "blockfs/cache.h"
#include "util/file.h"
#include "util/fileio.h"
#include "blockfs/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_MIN_CAP      1024
#define HOUSEKEEPING_EVERY 1 /* s: how long a pack another process removed may stay open */

int64_t cache_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* IDs are SHA-256 digests: their first bytes are already uniform. */
static size_t id_hash(const struct block_id *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

struct cache_entry *cache_index_find(struct cache *c, const struct block_id *id)
{
	size_t mask = c->cap - 1;

	for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
		struct cache_entry *e = &c->tab[i];

		if (e->state == ENTRY_EMPTY)
			return NULL;
		if (e->state == ENTRY_USED && block_id_equal(&e->id, id))
			return e;
	}
}

static struct cache_entry *slot_for(struct cache_entry *tab, size_t cap, const struct block_id *id)
{
	size_t mask = cap - 1, i = id_hash(id) & mask;

	while (tab[i].state == ENTRY_USED)
		i = (i + 1) & mask;
	return &tab[i];
}

/* Rebuilt at twice the live entries when live and removed fill half the table. */
static int index_grow(struct cache *c)
{
	size_t cap = c->cap ? c->cap : INDEX_MIN_CAP;
	struct cache_entry *tab;

	while (cap < 4 * (c->used + 1))
		cap *= 2;
	/* An entry is a cache line: a lookup's one miss to memory, not two. */
	_Static_assert(sizeof(*tab) == 64, "a cache entry is one cache line");
	tab = aligned_alloc(64, cap * sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	memset(tab, 0, cap * sizeof(*tab));
	for (size_t i = 0; i < c->cap; i++)
		if (c->tab[i].state == ENTRY_USED)
			*slot_for(tab, cap, &c->tab[i].id) = c->tab[i];
	free(c->tab);
	c->tab = tab;
	c->cap = cap;
	c->tombs = 0;
	return 0;
}

int cache_index_add(struct cache *c, const struct pack_slot *s, struct cache_pack *p, uint32_t slot,
                    bool verified)
{
	struct cache_entry *e = cache_index_find(c, &s->id);

	if (e) {
		/*
		 * Two copies (two processes fetched one block): the checked one
		 * stays; between unchecked ones the newer, a damaged copy having
		 * been fetched again into a newer pack.
		 */
		if (e->verified || (!verified && e->pack->seq > p->seq))
			return 0;
		c->stats.bytes -= e->len;
	} else {
		if ((c->used + c->tombs + 1) * 2 > c->cap && index_grow(c))
			return -ENOMEM;
		e = slot_for(c->tab, c->cap, &s->id);
		if (e->state == ENTRY_TOMB)
			c->tombs--;
		c->used++;
		c->stats.entries++;
	}
	*e = (struct cache_entry){ .id = s->id,
		                   .pack = p,
		                   .off = s->off,
		                   .len = s->len,
		                   .slot = slot,
		                   .state = ENTRY_USED,
		                   .verified = verified,
		                   .sum = s->sum };
	c->stats.bytes += s->len;
	return 0;
}

void cache_index_remove(struct cache *c, struct cache_entry *e)
{
	e->state = ENTRY_TOMB;
	e->pack = NULL;
	c->used--;
	c->tombs++;
	c->stats.entries--;
	c->stats.bytes -= e->len;
}

static void cache_free(struct cache *c)
{
	cache_pack_close_all(c);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->packfd >= 0)
		close(c->packfd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->scan_lock);
	pthread_mutex_destroy(&c->lock);
	free(c->tab);
	free(c->packs);
	free(c->path);
	free(c);
}

/* Opens (making) DIR, DIR/packs and DIR/lock, in place of those open; -errno. */
int cache_open_dirs(struct cache *c)
{
	int dirfd, packfd = -1, lockfd = -1, rc;

	if (mkdir(c->path, 0755) && errno != EEXIST)
		return -errno;
	dirfd = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	/* Through fio: a crash test's images must hold the directory the packs are in. */
	rc = c->fio->mkdir(c->fio->ctx, dirfd, "packs", 0755);
	if ((rc && rc != -EEXIST) ||
	    (packfd = openat(dirfd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (lockfd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		rc = rc && rc != -EEXIST ? rc : -errno;
		if (packfd >= 0)
			close(packfd);
		close(dirfd);
		return rc;
	}
	if (c->dirfd < 0) {
		c->dirfd = dirfd;
		c->packfd = packfd;
		c->lockfd = lockfd;
		return 0;
	}
	/* In place: a thread holding the old descriptors now uses the new directory. */
	dup3(dirfd, c->dirfd, O_CLOEXEC);
	dup3(packfd, c->packfd, O_CLOEXEC);
	dup3(lockfd, c->lockfd, O_CLOEXEC);
	close(dirfd);
	close(packfd);
	close(lockfd);
	return 0;
}

int cache_open_opts(const char *dir, const struct cache_options *o, struct cache **out,
                    struct circ_err *err)
{
	struct cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return err_set(err, ENOMEM, "out of memory");
	c->dirfd = c->packfd = c->lockfd = -1;
	c->max_bytes = o->max_bytes;
	c->fio = o->fio ? o->fio : &fileio_system;
	c->log = o->log;
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->scan_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	c->path = strdup(dir);
	if (!c->path || index_grow(c)) {
		cache_free(c);
		return err_set(err, ENOMEM, "out of memory");
	}
	rc = cache_open_dirs(c);
	if (rc) {
		cache_free(c);
		return err_sys(err, -rc, "cache %s", dir);
	}
	pthread_mutex_lock(&c->scan_lock);
	rc = cache_packs_list(c, false);
	pthread_mutex_unlock(&c->scan_lock);
	if (rc) {
		err_sys(err, -rc, "reading cache %s", dir);
		cache_free(c);
		return -1;
	}
	if (cache_migrate(c, err)) {
		cache_free(c);
		return -1;
	}
	/* A bound lowered since the last run holds from now. */
	if (c->max_bytes)
		cache_pack_enforce_bound(c);
	c->next_housekeeping = cache_now_ns() / 1000000000 + HOUSEKEEPING_EVERY;
	*out = c;
	return 0;
}

int cache_open(const char *dir, uint64_t max_bytes, struct cache **out, struct circ_err *err)
{
	return cache_open_io(dir, max_bytes, NULL, out, err);
}

int cache_open_io(const char *dir, uint64_t max_bytes, const struct fileio *fio, struct cache **out,
                  struct circ_err *err)
{
	struct cache_options o = { .max_bytes = max_bytes, .fio = fio, .log = stderr };

	return cache_open_opts(dir, &o, out, err);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->wlock);
	cache_pack_seal(c);
	pthread_mutex_unlock(&c->wlock);
	cache_free(c);
}

void cache_set_log(struct cache *c, FILE *log)
{
	c->log = log;
}

/* Forgets a record a read found damaged, unless it was replaced meanwhile. */
static void drop(struct cache *c, const struct cache_entry *seen)
{
	static const uint8_t zeros[PACK_SLOT_SIZE];
	struct cache_entry *e;
	bool same;

	pthread_mutex_lock(&c->lock);
	e = cache_index_find(c, &seen->id);
	same = e && e->pack == seen->pack && e->slot == seen->slot;
	if (same)
		cache_index_remove(c, e);
	c->stats.dropped++;
	__atomic_add_fetch(&c->stats.misses, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&c->lock);
	/*
	 * Its slot zeroed, so that no later process reads it again: a slot is
	 * never rewritten otherwise, and a zero slot is one never written.
	 */
	if (same)
		c->fio->pwrite(c->fio->ctx, seen->pack->fd, zeros, PACK_SLOT_SIZE,
		               PACK_HDR_SIZE + (uint64_t)seen->slot * PACK_SLOT_SIZE);
}

/* A read's first use of a record in this process: the payload must match its slot's XXH3. */
static int read_checked(struct cache *c, const struct cache_entry *e, uint64_t off, size_t len,
                        void *out)
{
	uint8_t *whole = malloc(e->len);
	struct cache_entry *now;
	int rc;

	if (!whole)
		return -ENOMEM;
	rc = file_pread_full(e->pack->fd, whole, e->len, e->pack->hdr.data_off + e->off);
	if (rc || pack_sum(whole, e->len) != e->sum) {
		free(whole);
		drop(c, e);
		return -ENOENT;
	}
	if (len)
		memcpy(out, whole + off, len);
	free(whole);
	pthread_mutex_lock(&c->lock);
	now = cache_index_find(c, &e->id);
	if (now && now->pack == e->pack && now->slot == e->slot)
		now->verified = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Every second or so a read looks for packs other processes removed, to let go of them. */
static void housekeeping(struct cache *c, int64_t now_ns)
{
	int64_t now = now_ns / 1000000000;

	if (__atomic_load_n(&c->next_housekeeping, __ATOMIC_RELAXED) > now)
		return;
	__atomic_store_n(&c->next_housekeeping, now + HOUSEKEEPING_EVERY, __ATOMIC_RELAXED);
	if (pthread_mutex_trylock(&c->scan_lock) == 0) {
		cache_packs_refresh(c);
		pthread_mutex_unlock(&c->scan_lock);
	}
}

/*
 * Under lock (dropped and taken again on a miss): id's entry, looking at
 * what other processes' packs gained if this process has none.
 */
static struct cache_entry *find_or_refresh(struct cache *c, const struct block_id *id)
{
	struct cache_entry *e = cache_index_find(c, id);

	if (e)
		return e;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->scan_lock);
	cache_packs_refresh(c);
	pthread_mutex_unlock(&c->scan_lock);
	pthread_mutex_lock(&c->lock);
	return cache_index_find(c, id);
}

int cache_read(struct cache *c, const struct block_id *id, size_t block_size, uint64_t off,
               size_t len, void *out)
{
	int64_t now = cache_now_ns();
	struct cache_entry *e, seen;
	struct cache_pack *p;
	bool final;
	int rc;

	if (off > block_size || len > block_size - off)
		return -EINVAL;
	housekeeping(c, now);
	pthread_mutex_lock(&c->lock);
	e = find_or_refresh(c, id);
	if (!e) {
		__atomic_add_fetch(&c->stats.misses, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	seen = *e;
	p = e->pack;
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
	p->last_use = now;
	final = p->final;
	pthread_mutex_unlock(&c->lock);

	if (seen.len != block_size) {
		/* One ID has one size (it hashes the bytes): the record cannot be right. */
		drop(c, &seen);
		rc = -ENOENT;
	} else if (!seen.verified)
		rc = read_checked(c, &seen, off, len, out);
	else if (file_pread_full(p->fd, out, len, p->hdr.data_off + seen.off + off) == 0)
		rc = 0;
	else {
		drop(c, &seen);
		rc = -ENOENT;
	}
	/* Other processes see the use in the pack's mtime, set at most every few seconds. */
	if (rc == 0 && final &&
	    now - __atomic_load_n(&p->touched, __ATOMIC_RELAXED) >
	        (int64_t)CACHE_TOUCH_EVERY_S * 1000000000) {
		__atomic_store_n(&p->touched, now, __ATOMIC_RELAXED);
		futimens(p->fd, NULL);
	}
	if (rc == 0)
		__atomic_add_fetch(&c->stats.hits, 1, __ATOMIC_RELAXED);
	cache_pack_release(p);
	return rc;
}

/* Whether id is held; a put of a held block counts as a use of its pack. */
static bool refresh_if_held(struct cache *c, const struct block_id *id, size_t block_size)
{
	struct cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = cache_index_find(c, id);
	if (e && e->len == block_size)
		e->pack->last_use = cache_now_ns();
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

int cache_put(struct cache *c, const struct block_id *id, const void *data, size_t block_size)
{
	int rc;

	if (block_size == 0 || block_size > BLOCK_SIZE_MAX)
		return -EINVAL;
	housekeeping(c, cache_now_ns());
	if (refresh_if_held(c, id, block_size))
		return 0;
	pthread_mutex_lock(&c->wlock);
	/* Again: another thread may have put it while this one waited. */
	if (refresh_if_held(c, id, block_size)) {
		pthread_mutex_unlock(&c->wlock);
		return 0;
	}
	rc = cache_pack_make_floor(c, block_size);
	if (!rc)
		rc = cache_pack_room(c, block_size);
	if (!rc)
		rc = cache_pack_append(c, id, data, block_size);
	pthread_mutex_lock(&c->lock);
	c->full = rc == -ENOSPC;
	if (rc == -ENOSPC)
		c->stats.refused++;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->wlock);
	return rc;
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

	housekeeping(c, cache_now_ns());
	pthread_mutex_lock(&c->lock);
	found = cache_index_find(c, id) != NULL;
	pthread_mutex_unlock(&c->lock);
	return found;
}

int cache_block_size(struct cache *c, const struct block_id *id, size_t *size)
{
	struct cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = find_or_refresh(c, id);
	if (e)
		*size = e->len;
	pthread_mutex_unlock(&c->lock);
	return e ? 0 : -ENOENT;
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	st->hits = __atomic_load_n(&c->stats.hits, __ATOMIC_RELAXED);
	st->misses = __atomic_load_n(&c->stats.misses, __ATOMIC_RELAXED);
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
