/* SPDX-License-Identifier: MIT */
/*
 * The cache's packs: found in packs/, appended to by one process each, and
 * removed whole, least recently used first, to keep the one bound that
 * every process using the cache shares.
 *
 * A pack is written by the process holding flock(LOCK_EX) on it; with the
 * lock gone (sealed, or its writer dead) it gains no more slots. A pack is
 * made under a temporary name, locked, then renamed into place, so that no
 * other process sees it before its writer holds it. The bound counts every
 * pack at its size, and a pack still written at the size it may reach, so
 * that a process making room sees what the others may write. A pack
 * removed while another process reads it stays readable to that process
 * (unlinked, still open) until it notices, within a second or at its next
 * miss; its bytes are the blocks' bytes whatever happens, as a pack is
 * never rewritten.
 */
#include "blockfs/cache_int.h"
#include "util/file.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PACK_CAP_MAX (64ull << 20)
#define SCAN_SLOTS   64      /* slots read at once */
#define TMP_PREFIX   ".new-" /* a pack being made */
/*
 * A directory changed this recently may change again within its
 * timestamp's tick, unseen: listed again, at most every DIR_RELIST_NS.
 */
#define DIR_SETTLED_NS 1000000000
#define DIR_RELIST_NS  50000000

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* A pack out of packs[] and read by no one. */
static void pack_destroy(struct cache_pack *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

void cache_pack_release(struct cache_pack *p)
{
	if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == PACK_DEAD)
		pack_destroy(p);
}

static int packs_add(struct cache *c, struct cache_pack *p)
{
	if (c->n_packs == c->packs_cap) {
		size_t cap = c->packs_cap ? c->packs_cap * 2 : 64;
		struct cache_pack **n = realloc(c->packs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->packs = n;
		c->packs_cap = cap;
	}
	c->packs[c->n_packs++] = p;
	return 0;
}

static struct cache_pack *pack_find(struct cache *c, uint64_t seq)
{
	for (size_t i = 0; i < c->n_packs; i++)
		if (c->packs[i]->seq == seq)
			return c->packs[i];
	return NULL;
}

/*
 * Forgets pack p (removed from the cache): out of packs[] and its entries
 * gone now, its descriptor closed with its last read. Returns the entries
 * it held.
 */
static uint64_t pack_drop(struct cache *c, struct cache_pack *p)
{
	uint64_t n = 0;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->cap; i++)
		if (c->tab[i].state == ENTRY_USED && c->tab[i].pack == p) {
			cache_index_remove(c, &c->tab[i]);
			n++;
		}
	for (size_t i = 0; i < c->n_packs; i++)
		if (c->packs[i] == p) {
			c->packs[i] = c->packs[--c->n_packs];
			break;
		}
	/* No entry names it any more: no read takes it from now on. */
	if (__atomic_or_fetch(&p->refs, PACK_DEAD, __ATOMIC_ACQ_REL) == PACK_DEAD)
		pack_destroy(p);
	pthread_mutex_unlock(&c->lock);
	return n;
}

void cache_pack_close_all(struct cache *c)
{
	while (c->n_packs)
		pack_destroy(c->packs[--c->n_packs]);
}

/*
 * Indexes the slots of p from the first not read yet. A pack still written
 * is read up to its first slot not whole (the next one written, or being
 * written); a sealed one to its end, past slots a power cut tore.
 */
static void scan_slots(struct cache *c, struct cache_pack *p)
{
	uint8_t buf[SCAN_SLOTS * PACK_SLOT_SIZE];

	while (p->scanned < p->hdr.n_slots) {
		uint32_t n = p->hdr.n_slots - p->scanned;
		ssize_t got;

		if (n > SCAN_SLOTS)
			n = SCAN_SLOTS;
		got = pread(p->fd, buf, (size_t)n * PACK_SLOT_SIZE,
		            PACK_HDR_SIZE + (off_t)p->scanned * PACK_SLOT_SIZE);
		if (got <= 0)
			return;
		n = (uint32_t)(got / PACK_SLOT_SIZE);
		if (n == 0)
			return;
		for (uint32_t i = 0; i < n; i++) {
			struct pack_slot s;

			if (pack_slot_decode(buf + (size_t)i * PACK_SLOT_SIZE, &p->hdr, &s)) {
				if (!p->final)
					return;
			} else {
				/* Out of memory, a block goes unindexed: read, it is fetched again.
				 */
				pthread_mutex_lock(&c->lock);
				CIRC_BEST_EFFORT(cache_index_add(c, &s, p, p->scanned, false));
				pthread_mutex_unlock(&c->lock);
			}
			p->scanned++;
		}
	}
}

/* Whether a process writes p: it holds the pack's lock. */
static bool pack_has_writer(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB))
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

/*
 * What a crash left of a pack being made: a header that is short or not one
 * at all. A header of another version is a newer circ's, and left alone.
 */
static bool header_is_debris(const uint8_t *hdr, ssize_t got)
{
	return got < PACK_HDR_SIZE || memcmp(hdr, "CIRCPAK", 7) != 0;
}

/*
 * Opens pack seq (file ino) and indexes it. Under the cache's lock
 * (locked), a pack whose header is debris is removed; one that cannot be
 * opened is passed over, unless the process is out of descriptors.
 */
static int pack_open(struct cache *c, uint64_t seq, ino_t ino, bool locked)
{
	uint8_t hdr[PACK_HDR_SIZE];
	char name[PACK_NAME_LEN + 1];
	struct cache_pack *p;
	struct pack_hdr h;
	struct stat st;
	ssize_t got = 0;
	int fd, rc;

	pack_name(seq, name);
	fd = openat(c->packfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = openat(c->packfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -errno : 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_ino != ino ||
	    (got = pread(fd, hdr, sizeof(hdr), 0)) != sizeof(hdr) ||
	    pack_hdr_decode(hdr, seq, &h)) {
		close(fd);
		if (locked && S_ISREG(st.st_mode) && st.st_ino == ino && header_is_debris(hdr, got))
			c->fio->unlink(c->fio->ctx, c->packfd, name);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->seq = seq;
	p->ino = ino;
	p->fd = fd;
	p->hdr = h;
	p->size = (uint64_t)st.st_size;
	p->last_use = p->touched = mtime_ns(&st);
	p->final = !pack_has_writer(fd);
	p->listed = true;
	pthread_mutex_lock(&c->lock);
	rc = packs_add(c, p);
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		pack_destroy(p);
		return rc;
	}
	scan_slots(c, p);
	return 0;
}

/*
 * Lists packs/: indexes the packs new to this process and forgets those
 * gone (another process removed them to keep the bound). Under the cache's
 * lock, what a crash left of a pack being made is removed.
 */
int cache_packs_list(struct cache *c, bool locked)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	if (fstat(c->packfd, &st))
		return -errno;
	c->dir_mtime = st.st_mtim;
	c->listed_at = cache_now_ns();
	fd = dup(c->packfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	for (size_t i = 0; i < c->n_packs; i++)
		c->packs[i]->listed = false;
	while (!rc && (de = readdir(d))) {
		struct cache_pack *p;
		uint64_t seq;

		if (locked && strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			c->fio->unlink(c->fio->ctx, c->packfd, de->d_name);
			continue;
		}
		if (pack_name_parse(de->d_name, &seq) ||
		    fstatat(c->packfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (seq >= c->next_seq)
			c->next_seq = seq + 1;
		p = pack_find(c, seq);
		if (p && p->ino != st.st_ino && p != c->active) {
			/* The name came back for another pack: the one known is gone. */
			pack_drop(c, p);
			p = NULL;
		}
		if (p)
			p->listed = true;
		else
			rc = pack_open(c, seq, st.st_ino, locked);
	}
	closedir(d);
	/* Gone from the directory: removed by another process (ours being written stays ours). */
	for (size_t i = c->n_packs; !rc && i-- > 0;)
		if (i < c->n_packs && !c->packs[i]->listed && c->packs[i] != c->active)
			pack_drop(c, c->packs[i]);
	return rc;
}

/*
 * The cache's directory was deleted under a running client (rm -rf of the
 * cache): without this every block fetched would be put into files no one
 * can see again. The directory is made again, the packs that went with it
 * forgotten, and the log says so once. Not under the cache's lock: the
 * lock's file is opened again.
 */
static void recreate(struct cache *c)
{
	struct stat st;

	if (fstat(c->dirfd, &st) == 0 && st.st_nlink > 0 && fstat(c->packfd, &st) == 0 &&
	    st.st_nlink > 0)
		return;
	if (file_mkdirs(c->path, 0755, NULL) || cache_open_dirs(c))
		return;
	for (size_t i = c->n_packs; i-- > 0;)
		if (i < c->n_packs && c->packs[i] != c->active)
			pack_drop(c, c->packs[i]);
	pthread_mutex_lock(&c->lock);
	c->stats.recreated++;
	pthread_mutex_unlock(&c->lock);
	if (c->log) {
		fprintf(c->log, "circ: the block cache %s was deleted; made again, empty\n",
		        c->path);
		fflush(c->log);
	}
}

/* Catches up with other processes: packs made or removed, slots appended. */
void cache_packs_refresh(struct cache *c)
{
	int64_t now = cache_now_ns();
	struct stat st;

	recreate(c);
	if (fstat(c->packfd, &st) == 0 &&
	    (st.st_mtim.tv_sec != c->dir_mtime.tv_sec ||
	     st.st_mtim.tv_nsec != c->dir_mtime.tv_nsec ||
	     (now - mtime_ns(&st) < DIR_SETTLED_NS && now - c->listed_at > DIR_RELIST_NS)))
		CIRC_BEST_EFFORT(cache_packs_list(c, false)); /* failed: the last listing stands */
	for (size_t i = 0; i < c->n_packs; i++) {
		struct cache_pack *p = c->packs[i];

		if (p->final || p->mine)
			continue;
		/* A slot is written after its payload: look whether the size changed or not. */
		scan_slots(c, p);
		if (!pack_has_writer(p->fd)) {
			pthread_mutex_lock(&c->lock);
			p->final = true;
			pthread_mutex_unlock(&c->lock);
			scan_slots(c, p);
		}
	}
}

/* What pack p counts against the bound: a pack still written at the size it may reach. */
static uint64_t pack_bytes(const struct cache_pack *p)
{
	return p->final ? p->size : p->hdr.data_off + p->hdr.capacity;
}

/*
 * How many bytes must go for len more to leave the file system its floor
 * free: the cache never starves the disk's other users (the overlay first).
 */
static uint64_t floor_shortfall(struct cache *c, uint64_t len)
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

/*
 * Under scan_lock and the cache's lock: removes the least recently used
 * sealed packs until need more bytes keep the bound and (with floor) leave
 * the file system its floor. The floor's shortfall is measured once and
 * counted down by what each removal frees on disk: the space of a pack
 * another process still has open comes back only when it lets go. Where
 * nothing is left to remove, a cache holding nothing still takes one pack
 * past its bound (a block larger than the bound is kept until the next),
 * but never one past the floor: -ENOSPC.
 */
static int evict_for(struct cache *c, uint64_t need, bool bound, bool floor)
{
	uint64_t short_by = floor ? floor_shortfall(c, need) : 0;

	for (;;) {
		struct cache_pack *victim = NULL;
		char name[PACK_NAME_LEN + 1];
		uint64_t total = 0, freed = 0, n;
		struct stat st;

		for (size_t i = 0; i < c->n_packs; i++) {
			struct cache_pack *p = c->packs[i];

			if (fstat(p->fd, &st) == 0) {
				p->size = (uint64_t)st.st_size;
				pthread_mutex_lock(&c->lock);
				if (mtime_ns(&st) > p->last_use)
					p->last_use = mtime_ns(&st);
				pthread_mutex_unlock(&c->lock);
			}
			total += pack_bytes(p);
			if (p->final && p != c->active &&
			    (!victim || p->last_use < victim->last_use ||
			     (p->last_use == victim->last_use && p->seq < victim->seq)))
				victim = p;
		}
		if (!short_by && (!bound || !c->max_bytes || total + need <= c->max_bytes))
			return 0;
		if (!victim)
			return !short_by && total == 0 ? 0 : -ENOSPC;
		if (fstat(victim->fd, &st) == 0)
			freed = (uint64_t)st.st_blocks * 512;
		pack_name(victim->seq, name);
		c->fio->unlink(c->fio->ctx, c->packfd, name);
		n = pack_drop(c, victim);
		pthread_mutex_lock(&c->lock);
		c->stats.evictions += n;
		pthread_mutex_unlock(&c->lock);
		short_by = short_by > freed ? short_by - freed : 0;
	}
}

int cache_pack_make_floor(struct cache *c, size_t len)
{
	int rc;

	if (floor_shortfall(c, len) == 0)
		return 0;
	pthread_mutex_lock(&c->scan_lock);
	recreate(c);
	flock(c->lockfd, LOCK_EX);
	rc = cache_packs_list(c, true);
	if (!rc)
		rc = evict_for(c, len, false, true);
	flock(c->lockfd, LOCK_UN);
	pthread_mutex_unlock(&c->scan_lock);
	return rc;
}

void cache_pack_enforce_bound(struct cache *c)
{
	pthread_mutex_lock(&c->scan_lock);
	flock(c->lockfd, LOCK_EX);
	if (cache_packs_list(c, true) == 0)
		evict_for(c, 0, true, false);
	flock(c->lockfd, LOCK_UN);
	pthread_mutex_unlock(&c->scan_lock);
}

/* Under scan_lock: the active pack sealed (its lock released: it is final for everyone). */
static void seal_locked(struct cache *c)
{
	struct cache_pack *p = c->active;

	if (!p)
		return;
	pthread_mutex_lock(&c->lock);
	p->final = true;
	pthread_mutex_unlock(&c->lock);
	flock(p->fd, LOCK_UN);
	c->active = NULL;
}

void cache_pack_seal(struct cache *c)
{
	pthread_mutex_lock(&c->scan_lock);
	seal_locked(c);
	pthread_mutex_unlock(&c->scan_lock);
}

/* Payload bytes of a new pack: 1/16 of the bound, so that removing one frees little. */
static uint64_t pack_capacity(const struct cache *c, size_t block_size)
{
	uint64_t cap = c->max_bytes ? c->max_bytes / 16 : PACK_CAP_MAX;

	cap = cap / PACK_ALIGN * PACK_ALIGN;
	if (cap > PACK_CAP_MAX)
		cap = PACK_CAP_MAX;
	if (cap < block_size)
		cap = (block_size + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
	return cap;
}

/* Its slots: payloads are 4 KiB-aligned, so no more than cap / 4 KiB of them fit. */
static uint32_t pack_slots(uint64_t cap, size_t block_size)
{
	uint64_t n = cap / (block_size < PACK_ALIGN ? PACK_ALIGN : block_size);

	return n > PACK_SLOTS_MAX ? PACK_SLOTS_MAX : (uint32_t)n;
}

static uint64_t pack_size(uint64_t cap, size_t block_size)
{
	return pack_data_off(pack_slots(cap, block_size)) + cap;
}

/*
 * Under scan_lock and the cache's lock (so the sequence number is this
 * process's alone): makes the pack this process appends to, under a
 * temporary name until it holds the pack's lock.
 */
static int pack_create(struct cache *c, size_t block_size, uint64_t cap)
{
	char name[PACK_NAME_LEN + 1], tmp[PACK_NAME_LEN + 16];
	uint8_t hdr[PACK_HDR_SIZE];
	struct cache_pack *p;
	struct stat st;
	int fd, rc;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->seq = c->next_seq++;
	pack_name(p->seq, name);
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%016" PRIx64, p->seq);
	fd = c->fio->open(c->fio->ctx, c->packfd, tmp,
	                  O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		free(p);
		return fd;
	}
	p->fd = fd;
	rc = pack_hdr_init(&p->hdr, p->seq, pack_slots(cap, block_size), cap);
	if (!rc) {
		pack_hdr_encode(&p->hdr, hdr);
		rc = c->fio->pwrite(c->fio->ctx, fd, hdr, sizeof(hdr), 0);
	}
	if (!rc && flock(fd, LOCK_EX | LOCK_NB))
		rc = -errno;
	if (!rc && fstat(fd, &st))
		rc = -errno;
	if (!rc)
		rc = c->fio->rename(c->fio->ctx, c->packfd, tmp, name);
	if (!rc) {
		p->ino = st.st_ino;
		p->mine = true;
		p->listed = true;
		p->size = PACK_HDR_SIZE;
		p->last_use = p->touched = cache_now_ns();
		pthread_mutex_lock(&c->lock);
		rc = packs_add(c, p);
		pthread_mutex_unlock(&c->lock);
		if (rc)
			c->fio->unlink(c->fio->ctx, c->packfd, name);
	} else {
		c->fio->unlink(c->fio->ctx, c->packfd, tmp);
	}
	if (rc) {
		c->fio->close(c->fio->ctx, fd);
		free(p);
		return rc;
	}
	c->active = p;
	return 0;
}

int cache_pack_room(struct cache *c, size_t block_size)
{
	struct cache_pack *p = c->active;
	uint64_t cap;
	struct stat st;
	int rc;

	if (p && p->scanned < p->hdr.n_slots && p->used + block_size <= p->hdr.capacity &&
	    fstat(p->fd, &st) == 0 && st.st_nlink > 0)
		return 0;
	pthread_mutex_lock(&c->scan_lock);
	if (p && fstat(p->fd, &st) == 0 && st.st_nlink == 0) {
		/* Deleted under us (rm -rf of the cache): what it holds is gone for others. */
		seal_locked(c);
		pack_drop(c, p);
	}
	seal_locked(c);
	recreate(c);
	cap = pack_capacity(c, block_size);
	flock(c->lockfd, LOCK_EX);
	rc = cache_packs_list(c, true);
	if (!rc)
		rc = evict_for(c, pack_size(cap, block_size), true, true);
	if (!rc)
		rc = pack_create(c, block_size, cap);
	flock(c->lockfd, LOCK_UN);
	pthread_mutex_unlock(&c->scan_lock);
	return rc;
}

int cache_pack_append(struct cache *c, const struct block_id *id, const void *data,
                      size_t block_size)
{
	struct cache_pack *p = c->active;
	struct pack_slot s = { .id = *id,
		               .off = (uint32_t)p->used,
		               .len = (uint32_t)block_size,
		               .block_size = (uint32_t)block_size,
		               .enc = PACK_ENC_RAW,
		               .sum = pack_sum(data, block_size) };
	uint8_t slot[PACK_SLOT_SIZE];
	uint32_t i = p->scanned;
	int rc;

	/* Payload first, then its slot: a slot is whole only over a payload written. */
	rc = c->fio->pwrite(c->fio->ctx, p->fd, data, block_size, p->hdr.data_off + p->used);
	if (!rc) {
		pack_slot_encode(&s, &p->hdr, slot);
		rc = c->fio->pwrite(c->fio->ctx, p->fd, slot, sizeof(slot),
		                    PACK_HDR_SIZE + (uint64_t)i * PACK_SLOT_SIZE);
	}
	if (rc) {
		cache_pack_seal(c);
		return rc;
	}
	p->used += (block_size + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
	p->size = p->hdr.data_off + p->used;
	pthread_mutex_lock(&c->lock);
	p->scanned = i + 1;
	rc = cache_index_add(c, &s, p, i, true);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
