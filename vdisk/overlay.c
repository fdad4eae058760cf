/* SPDX-License-Identifier: MIT */
#include "vdisk/overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/buf.h"
#include "util/file.h"
#include "util/fileio.h"

#define MAP_FILE  "overlay.map"
#define MAP_TMP   "overlay.map.tmp"
#define LOG_FILE  "overlay.log"
#define DATA_FILE "overlay.data"

#define MAP_MAGIC            "CIRCOVM1"
#define MAP_HEADER_LEN       64          /* magic, n_sectors u64, seq u64, reserved u64, sha256 */
#define LOG_MAGIC            0x424c564fu /* "OVLB" */
#define LOG_HEADER_LEN       48          /* magic u32, count u32, seq u64, sha256 of the rest */
#define CHECKPOINT_LOG_BYTES (8u << 20)  /* the default; see overlay_open_io */

/* map values: 0 base, MAP_ZERO zero, else slot + 1 */
#define MAP_BASE 0u
#define MAP_ZERO 0xffffffffu
#define SLOT_MAX 0x7ffffffeu
#define PUNCH    0x80000000u /* on a pending slot: punch a hole when it is freed */

struct u32vec {
	uint32_t *v;
	size_t n, cap;
};

struct overlay {
	uint64_t checkpoint_bytes; /* the log's size that makes a flush write a checkpoint */
	const struct fileio *fio;  /* what a crash can expose goes through it */
	int dirfd, data_fd, log_fd;
	uint64_t n_sectors;
	uint32_t *map;
	/*
	 * A bit per SUMMARY_SPAN sectors, set once any of them may be other
	 * than base (never cleared but by a reset). A read of a span the guest
	 * never wrote, most of a disk, answers from these few words (in the
	 * CPU's cache) without the locks or the map (a cache miss for each
	 * random read).
	 */
	uint64_t *summary;
	uint8_t *dirty_bits; /* sectors changed since the last flush */
	struct u32vec dirty; /* the same, as a list */
	struct u32vec free_slots;
	struct u32vec pending; /* freed since the last flush: a durable map may name them */
	uint32_t n_slots;      /* slots in the data file */
	uint64_t used_slots, changed;
	uint64_t seq; /* last batch made durable */
	uint64_t log_bytes;

	pthread_mutex_t meta;  /* guards the fields above */
	pthread_rwlock_t io;   /* readers: sector I/O; writer: making slots reusable */
	pthread_mutex_t flush; /* one flush at a time */
};

#define SUMMARY_SPAN 64

static void summary_mark(struct overlay *o, uint64_t s)
{
	uint64_t span = s / SUMMARY_SPAN;

	__atomic_fetch_or(&o->summary[span / 64], 1ull << (span % 64), __ATOMIC_RELEASE);
}

static bool summary_all_base(const struct overlay *o, uint64_t s)
{
	uint64_t span = s / SUMMARY_SPAN;

	return !(__atomic_load_n(&o->summary[span / 64], __ATOMIC_ACQUIRE) & (1ull << (span % 64)));
}

static size_t summary_words(uint64_t n_sectors)
{
	return (size_t)((n_sectors + SUMMARY_SPAN - 1) / SUMMARY_SPAN / 64 + 1);
}

static int vec_push(struct u32vec *v, uint32_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		uint32_t *p = realloc(v->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

static void sha256(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	memset(out, 0, 32);
	if (!md)
		return;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, a, alen);
	if (blen)
		EVP_DigestUpdate(md, b, blen);
	EVP_DigestFinal_ex(md, out, NULL);
	EVP_MD_CTX_free(md);
}

/*
 * Writes the whole map as a checkpoint covering batches up to o->seq. The
 * map may name slots written after this flush synced the data file (writes
 * that completed meanwhile): their data is synced first, or a power cut
 * would leave a durable map pointing at bytes that never reached the disk.
 * Called with io held for writing, so no slot is being written.
 */
static int checkpoint(struct overlay *o)
{
	size_t len = o->n_sectors * sizeof(uint32_t);
	uint8_t h[MAP_HEADER_LEN] = { 0 };
	uint8_t *le;
	int fd, rc;

	rc = o->fio->sync(o->fio->ctx, o->data_fd);
	if (rc)
		return rc;
	le = malloc(len ? len : 1);
	if (!le)
		return -ENOMEM;
	for (uint64_t i = 0; i < o->n_sectors; i++)
		put_u32le(le + 4 * i, o->map[i]);
	memcpy(h, MAP_MAGIC, 8);
	put_u64le(h + 8, o->n_sectors);
	put_u64le(h + 16, o->seq);
	sha256(h, 32, le, len, h + 32);
	fd = o->fio->open(o->fio->ctx, o->dirfd, MAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	                  0600);
	if (fd < 0) {
		free(le);
		return fd;
	}
	rc = o->fio->pwrite(o->fio->ctx, fd, h, sizeof(h), 0);
	if (!rc)
		rc = o->fio->pwrite(o->fio->ctx, fd, le, len, sizeof(h));
	if (!rc)
		rc = o->fio->sync(o->fio->ctx, fd);
	o->fio->close(o->fio->ctx, fd);
	free(le);
	if (!rc)
		rc = o->fio->rename(o->fio->ctx, o->dirfd, MAP_TMP, MAP_FILE);
	if (!rc)
		rc = o->fio->sync(o->fio->ctx, o->dirfd);
	/* The checkpoint now holds every batch: the log can start over. */
	if (!rc)
		rc = o->fio->truncate(o->fio->ctx, o->log_fd, 0);
	/* Truncated is truncated, synced or not: a later cut-off must not grow it back. */
	if (!rc)
		o->log_bytes = 0;
	if (!rc)
		rc = o->fio->sync(o->fio->ctx, o->log_fd);
	return rc;
}

static int load_map(struct overlay *o, struct circ_err *err)
{
	size_t len = o->n_sectors * sizeof(uint32_t);
	uint8_t h[MAP_HEADER_LEN], digest[32];
	uint8_t *le;
	int fd, rc;

	fd = openat(o->dirfd, MAP_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0; /* a new overlay: every sector reads the base */
	if (fd < 0)
		return err_sys(err, errno, "opening " MAP_FILE);
	le = malloc(len ? len : 1);
	if (!le) {
		close(fd);
		return err_set(err, ENOMEM, "out of memory");
	}
	rc = file_pread_full(fd, h, sizeof(h), 0);
	if (!rc)
		rc = file_pread_full(fd, le, len, sizeof(h));
	close(fd);
	if (rc || memcmp(h, MAP_MAGIC, 8) != 0 || get_u64le(h + 8) != o->n_sectors) {
		free(le);
		return err_set(err, EBADMSG, MAP_FILE " is damaged or for a disk of another size");
	}
	sha256(h, 32, le, len, digest);
	if (memcmp(digest, h + 32, 32) != 0) {
		free(le);
		return err_set(err, EBADMSG, MAP_FILE " is damaged (checksum mismatch)");
	}
	o->seq = get_u64le(h + 16);
	for (uint64_t i = 0; i < o->n_sectors; i++)
		o->map[i] = get_u32le(le + 4 * i);
	free(le);
	return 0;
}

/* Applies the log's batches after the checkpoint; a torn tail is cut off. */
static int replay_log(struct overlay *o, struct circ_err *err)
{
	struct buf b = { 0 };
	uint8_t digest[32];
	struct stat st;
	size_t pos = 0;

	if (fstat(o->log_fd, &st))
		return err_sys(err, errno, "reading " LOG_FILE);
	if (buf_reserve(&b, (size_t)st.st_size + 1))
		return err_set(err, ENOMEM, "out of memory");
	if (file_pread_full(o->log_fd, b.data, (size_t)st.st_size, 0)) {
		buf_free(&b);
		return err_sys(err, EIO, "reading " LOG_FILE);
	}
	b.len = (size_t)st.st_size;
	while (b.len - pos >= LOG_HEADER_LEN) {
		const uint8_t *h = b.data + pos;
		uint32_t count = get_u32le(h + 4);
		uint64_t seq = get_u64le(h + 8);
		size_t body = (size_t)count * 8;

		if (get_u32le(h) != LOG_MAGIC || count > o->n_sectors ||
		    body > b.len - pos - LOG_HEADER_LEN)
			break;
		sha256(h, 16, h + LOG_HEADER_LEN, body, digest);
		if (memcmp(digest, h + 16, 32) != 0)
			break;
		if (seq > o->seq) {
			if (seq != o->seq + 1)
				break;
			for (uint32_t i = 0; i < count; i++) {
				uint32_t s = get_u32le(h + LOG_HEADER_LEN + 8 * (size_t)i);
				uint32_t v = get_u32le(h + LOG_HEADER_LEN + 8 * (size_t)i + 4);

				if (s < o->n_sectors)
					o->map[s] = v;
			}
			o->seq = seq;
		}
		pos += LOG_HEADER_LEN + body;
	}
	buf_free(&b);
	if (pos != (size_t)st.st_size && o->fio->truncate(o->fio->ctx, o->log_fd, pos))
		return err_sys(err, EIO, "truncating " LOG_FILE);
	o->log_bytes = pos;
	return 0;
}

/* Derives slot use from the map: what no sector names is free. */
static int rebuild_slots(struct overlay *o, struct circ_err *err)
{
	uint8_t *used = calloc(o->n_slots ? o->n_slots : 1, 1);

	if (!used)
		return err_set(err, ENOMEM, "out of memory");
	for (uint64_t i = 0; i < o->n_sectors; i++) {
		uint32_t v = o->map[i];

		if (v == MAP_BASE)
			continue;
		o->changed++;
		summary_mark(o, i);
		if (v == MAP_ZERO)
			continue;
		if (v - 1 >= o->n_slots) {
			/*
			 * A slot past the data file's end: the sector was never written
			 * durably. Log the correction, or a later write that grows the file
			 * over that slot would bring the stale entry back.
			 */
			o->map[i] = MAP_BASE;
			o->changed--;
			if (vec_push(&o->dirty, (uint32_t)i)) {
				free(used);
				return err_set(err, ENOMEM, "out of memory");
			}
			o->dirty_bits[i / 8] |= (uint8_t)(1u << (i % 8));
			continue;
		}
		used[v - 1] = 1;
		o->used_slots++;
	}
	for (uint32_t s = o->n_slots; s-- > 0;)
		if (!used[s] && vec_push(&o->free_slots, s)) {
			free(used);
			return err_set(err, ENOMEM, "out of memory");
		}
	free(used);
	return 0;
}

int overlay_open(const char *dir, uint64_t size, struct overlay **out, struct circ_err *err)
{
	return overlay_open_io(dir, size, NULL, 0, out, err);
}

int overlay_open_io(const char *dir, uint64_t size, const struct fileio *fio,
                    uint64_t checkpoint_bytes, struct overlay **out, struct circ_err *err)
{
	struct overlay *o = calloc(1, sizeof(*o));
	struct stat st;

	if (!o)
		return err_set(err, ENOMEM, "out of memory");
	o->fio = fio ? fio : &fileio_system;
	o->checkpoint_bytes = checkpoint_bytes ? checkpoint_bytes : CHECKPOINT_LOG_BYTES;
	o->dirfd = o->data_fd = o->log_fd = -1;
	pthread_mutex_init(&o->meta, NULL);
	pthread_mutex_init(&o->flush, NULL);
	pthread_rwlock_init(&o->io, NULL);
	o->n_sectors = (size + OVERLAY_SECTOR - 1) / OVERLAY_SECTOR;
	if (o->n_sectors > SLOT_MAX) {
		err_set(err, EFBIG, "disk too large for the overlay");
		goto fail;
	}
	o->map = calloc(o->n_sectors ? o->n_sectors : 1, sizeof(*o->map));
	o->summary = calloc(summary_words(o->n_sectors), sizeof(*o->summary));
	o->dirty_bits = calloc(o->n_sectors / 8 + 1, 1);
	if (!o->map || !o->summary || !o->dirty_bits) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0) {
		err_sys(err, errno, "%s", dir);
		goto fail;
	}
	o->data_fd =
	    o->fio->open(o->fio->ctx, o->dirfd, DATA_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	o->log_fd = o->fio->open(o->fio->ctx, o->dirfd, LOG_FILE,
	                         O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (o->data_fd < 0 || o->log_fd < 0) {
		err_sys(err, -(o->data_fd < 0 ? o->data_fd : o->log_fd),
		        "opening the overlay in %s", dir);
		goto fail;
	}
	/* A file created just now is durable only with its directory entry. */
	if (fstat(o->data_fd, &st) || o->fio->sync(o->fio->ctx, o->dirfd)) {
		err_sys(err, errno ? errno : EIO, "opening the overlay in %s", dir);
		goto fail;
	}
	if ((uint64_t)st.st_size / OVERLAY_SECTOR > SLOT_MAX) {
		err_set(err, EFBIG, "%s/" DATA_FILE " is too large", dir);
		goto fail;
	}
	o->n_slots = (uint32_t)((uint64_t)st.st_size / OVERLAY_SECTOR);
	if (load_map(o, err) || replay_log(o, err) || rebuild_slots(o, err)) {
		err_prefix(err, "overlay in %s", dir);
		goto fail;
	}
	*out = o;
	return 0;
fail:
	overlay_close(o);
	return -1;
}

void overlay_close(struct overlay *o)
{
	if (!o)
		return;
	if (o->dirfd >= 0)
		close(o->dirfd);
	if (o->data_fd >= 0)
		o->fio->close(o->fio->ctx, o->data_fd);
	if (o->log_fd >= 0)
		o->fio->close(o->fio->ctx, o->log_fd);
	free(o->map);
	free(o->summary);
	free(o->dirty_bits);
	free(o->dirty.v);
	free(o->free_slots.v);
	free(o->pending.v);
	pthread_mutex_destroy(&o->meta);
	pthread_mutex_destroy(&o->flush);
	pthread_rwlock_destroy(&o->io);
	free(o);
}

int overlay_read_sector(struct overlay *o, uint64_t s, void *buf, enum overlay_state *state)
{
	uint32_t v;
	int rc = 0;

	if (s >= o->n_sectors)
		return -EINVAL;
	if (summary_all_base(o, s)) {
		*state = OVERLAY_BASE;
		return 0;
	}
	pthread_rwlock_rdlock(&o->io);
	pthread_mutex_lock(&o->meta);
	v = o->map[s];
	pthread_mutex_unlock(&o->meta);
	if (v == MAP_BASE)
		*state = OVERLAY_BASE;
	else if (v == MAP_ZERO)
		*state = OVERLAY_ZERO;
	else
		*state = OVERLAY_DATA;
	if (*state == OVERLAY_DATA && buf)
		rc = file_pread_full(o->data_fd, buf, OVERLAY_SECTOR,
		                     (uint64_t)(v - 1) * OVERLAY_SECTOR);
	pthread_rwlock_unlock(&o->io);
	return rc;
}

/* Records sector s's new map value; called with meta held. */
static int set_sector(struct overlay *o, uint64_t s, uint32_t v, bool punch_old)
{
	uint32_t old = o->map[s];

	if (!(o->dirty_bits[s / 8] & (1u << (s % 8)))) {
		if (vec_push(&o->dirty, (uint32_t)s))
			return -ENOMEM;
		o->dirty_bits[s / 8] |= (uint8_t)(1u << (s % 8));
	}
	if (old != MAP_BASE && old != MAP_ZERO) {
		if (vec_push(&o->pending, (old - 1) | (punch_old ? PUNCH : 0)))
			return -ENOMEM;
		o->used_slots--;
	}
	if (v != MAP_BASE && v != MAP_ZERO)
		o->used_slots++;
	o->changed += (old == MAP_BASE) - (v == MAP_BASE);
	if (v != MAP_BASE)
		summary_mark(o, s);
	o->map[s] = v;
	return 0;
}

/* Room for n more entries, so that pushes after it cannot fail. */
static int vec_reserve(struct u32vec *v, size_t n)
{
	size_t cap = v->cap ? v->cap : 256;
	uint32_t *p;

	if (v->cap - v->n >= n)
		return 0;
	while (cap - v->n < n)
		cap *= 2;
	p = realloc(v->v, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	v->v = p;
	v->cap = cap;
	return 0;
}

void overlay_unstage(struct overlay *o, const uint32_t *slots, size_t n)
{
	pthread_mutex_lock(&o->meta);
	for (size_t i = 0; i < n; i++)
		if (vec_push(&o->free_slots, slots[i])) {
			/* Only the slot's space is lost until the next open rebuilds the list. */
		}
	pthread_mutex_unlock(&o->meta);
}

int overlay_stage(struct overlay *o, const void *buf, uint32_t *slot)
{
	int rc;

	pthread_rwlock_rdlock(&o->io);
	pthread_mutex_lock(&o->meta);
	if (o->free_slots.n) {
		*slot = o->free_slots.v[--o->free_slots.n];
	} else if (o->n_slots < SLOT_MAX) {
		*slot = o->n_slots++;
	} else {
		pthread_mutex_unlock(&o->meta);
		pthread_rwlock_unlock(&o->io);
		return -ENOSPC;
	}
	pthread_mutex_unlock(&o->meta);
	/* Never onto a slot a durable map may name: this slot is free on disk too. */
	rc = o->fio->pwrite(o->fio->ctx, o->data_fd, buf, OVERLAY_SECTOR,
	                    (uint64_t)*slot * OVERLAY_SECTOR);
	pthread_rwlock_unlock(&o->io);
	if (rc)
		overlay_unstage(o, slot, 1);
	return rc;
}

int overlay_commit(struct overlay *o, const uint64_t *sectors, const uint32_t *slots, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (sectors[i] >= o->n_sectors)
			return -EINVAL;
	pthread_mutex_lock(&o->meta);
	/* Everything set_sector may push, made room for first: then it cannot fail halfway. */
	if (vec_reserve(&o->dirty, n) || vec_reserve(&o->pending, n))
		rc = -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = set_sector(o, sectors[i], slots[i] + 1, false);
	pthread_mutex_unlock(&o->meta);
	return rc;
}

int overlay_write_sector(struct overlay *o, uint64_t s, const void *buf)
{
	uint32_t slot;
	int rc;

	if (s >= o->n_sectors)
		return -EINVAL;
	rc = overlay_stage(o, buf, &slot);
	if (rc)
		return rc;
	rc = overlay_commit(o, &s, &slot, 1);
	if (rc)
		overlay_unstage(o, &slot, 1);
	return rc;
}

int overlay_zero_sector(struct overlay *o, uint64_t s)
{
	int rc;

	if (s >= o->n_sectors)
		return -EINVAL;
	pthread_mutex_lock(&o->meta);
	rc = o->map[s] == MAP_ZERO ? 0 : set_sector(o, s, MAP_ZERO, true);
	pthread_mutex_unlock(&o->meta);
	return rc;
}

/*
 * Appends one batch with a single write; a failed or short one is cut off
 * again, so that no torn batch sits in front of later good ones.
 */
static int append_batch(struct overlay *o, const uint8_t *h, const struct buf *batch)
{
	struct iovec iov[2] = { { (void *)h, LOG_HEADER_LEN }, { batch->data, batch->len } };
	ssize_t want = (ssize_t)(LOG_HEADER_LEN + batch->len), n;
	int rc = 0;

	n = o->fio->append(o->fio->ctx, o->log_fd, iov, 2);
	if (n != want)
		rc = n < 0 ? (int)n : -ENOSPC;
	else
		rc = o->fio->sync(o->fio->ctx, o->log_fd);
	if (rc && o->fio->truncate(o->fio->ctx, o->log_fd, o->log_bytes)) {
		/* The torn tail stays; recovery stops there, as before this flush. */
	}
	return rc;
}

int overlay_flush(struct overlay *o)
{
	struct buf batch = { 0 };
	uint8_t h[LOG_HEADER_LEN] = { 0 };
	size_t n_pending;
	int rc = 0;

	pthread_mutex_lock(&o->flush);
	/* Take the changes first: each one's data write completed before it was listed. */
	pthread_mutex_lock(&o->meta);
	for (size_t i = 0; i < o->dirty.n && !rc; i++) {
		uint32_t s = o->dirty.v[i];

		rc = buf_append_u32le(&batch, s) || buf_append_u32le(&batch, o->map[s]) ? -ENOMEM
		                                                                        : 0;
		o->dirty_bits[s / 8] &= (uint8_t) ~(1u << (s % 8));
	}
	o->dirty.n = 0;
	n_pending = o->pending.n;
	pthread_mutex_unlock(&o->meta);
	if (rc)
		goto out;

	rc = o->fio->sync(o->fio->ctx, o->data_fd);
	if (rc)
		goto out;
	if (batch.len) {
		put_u32le(h, LOG_MAGIC);
		put_u32le(h + 4, (uint32_t)(batch.len / 8));
		put_u64le(h + 8, o->seq + 1);
		sha256(h, 16, batch.data, batch.len, h + 16);
		rc = append_batch(o, h, &batch);
		if (rc)
			goto out;
		o->seq++;
		o->log_bytes += sizeof(h) + batch.len;
	}

	/* The durable map no longer names the slots freed before this flush. */
	pthread_rwlock_wrlock(&o->io);
	pthread_mutex_lock(&o->meta);
	for (size_t i = 0; i < n_pending; i++) {
		uint32_t slot = o->pending.v[i] & ~PUNCH;

		if (o->pending.v[i] & PUNCH)
			o->fio->punch(o->fio->ctx, o->data_fd, (uint64_t)slot * OVERLAY_SECTOR,
			              OVERLAY_SECTOR);
		vec_push(&o->free_slots, slot);
	}
	if (n_pending)
		memmove(o->pending.v, o->pending.v + n_pending,
		        (o->pending.n - n_pending) * sizeof(uint32_t));
	o->pending.n -= n_pending;
	if (o->log_bytes > o->checkpoint_bytes)
		rc = checkpoint(o);
	pthread_mutex_unlock(&o->meta);
	pthread_rwlock_unlock(&o->io);
out:
	if (rc) {
		/* Not durable: list the changes again so that the next flush retries them. */
		pthread_mutex_lock(&o->meta);
		for (size_t i = 0; i + 8 <= batch.len; i += 8) {
			uint32_t s = get_u32le(batch.data + i);

			if (!(o->dirty_bits[s / 8] & (1u << (s % 8))) && !vec_push(&o->dirty, s))
				o->dirty_bits[s / 8] |= (uint8_t)(1u << (s % 8));
		}
		pthread_mutex_unlock(&o->meta);
	}
	buf_free(&batch);
	pthread_mutex_unlock(&o->flush);
	return rc;
}

/*
 * Its caller holds the disk alone (a kiosk's reset, an update): a write
 * between overlay_stage and overlay_commit would commit a slot of the data
 * file this truncates.
 */
int overlay_reset(struct overlay *o)
{
	int rc;

	pthread_mutex_lock(&o->flush);
	pthread_rwlock_wrlock(&o->io);
	pthread_mutex_lock(&o->meta);
	memset(o->map, 0, o->n_sectors * sizeof(*o->map));
	for (size_t i = 0; i < summary_words(o->n_sectors); i++)
		__atomic_store_n(&o->summary[i], 0, __ATOMIC_RELAXED);
	memset(o->dirty_bits, 0, o->n_sectors / 8 + 1);
	o->dirty.n = o->free_slots.n = o->pending.n = 0;
	o->n_slots = 0;
	o->used_slots = o->changed = 0;
	o->seq++;
	/* The empty map goes first: a crash after it leaves a clean overlay. */
	rc = checkpoint(o);
	if (!rc)
		rc = o->fio->truncate(o->fio->ctx, o->data_fd, 0);
	if (!rc)
		rc = o->fio->sync(o->fio->ctx, o->data_fd);
	pthread_mutex_unlock(&o->meta);
	pthread_rwlock_unlock(&o->io);
	pthread_mutex_unlock(&o->flush);
	return rc;
}

uint64_t overlay_bytes(struct overlay *o)
{
	uint64_t n;

	pthread_mutex_lock(&o->meta);
	n = o->used_slots * OVERLAY_SECTOR;
	pthread_mutex_unlock(&o->meta);
	return n;
}

uint64_t overlay_changed_sectors(struct overlay *o)
{
	uint64_t n;

	pthread_mutex_lock(&o->meta);
	n = o->changed;
	pthread_mutex_unlock(&o->meta);
	return n;
}
