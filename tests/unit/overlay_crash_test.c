/* SPDX-License-Identifier: MIT */
/*
 * Power cuts, simulated. The overlay runs a concurrent workload (two
 * writers, a flusher, checkpoints every few flushes) through a recording
 * struct fileio. From the record, each crash image is a set of files a power
 * cut at some point could have left: everything a sync made durable, and of
 * what came after the last sync of each file, any subset (so later writes
 * may survive where earlier ones did not), a write possibly torn at 512-byte
 * device sectors; of the directory's unsynced creates and renames, any
 * prefix. The overlay recovers each image and must show, for every sector:
 * what the last successful flush covered, or something written after it,
 * whole, never torn, never another sector's or a stale slot's bytes.
 * CIRC_CRASH_IMAGES sets how many images (default 1000; `make stress` more).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockfs/fileio.h"
#include "vdisk/overlay.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define NSECT        48  /* overlay sectors (4 KiB) of the test disk */
#define WRITES       160 /* per writer */
#define DEV_SECTOR   512 /* what a power cut may tear a write at */
#define MAX_FILES    64  /* data, log, and a map file per checkpoint */
#define MAX_FDS      64
#define CHECKPOINT_B 200 /* a checkpoint every few flushes */

enum op_kind {
	OP_WRITE,  /* ino, off, len, data */
	OP_TRUNC,  /* ino, len */
	OP_SYNC,   /* ino; -1: the directory */
	OP_CREATE, /* name -> ino */
	OP_RENAME  /* name -> name2 */
};

struct op {
	enum op_kind kind;
	int ino;
	char name[32], name2[32];
	uint64_t off, len;
	uint8_t *data;
};

/* Performs each operation for real, and records it. */
struct recorder {
	pthread_mutex_t lock;
	struct op *ops;
	size_t n, cap;
	int fd_ino[MAX_FDS];
	uint64_t size[MAX_FILES]; /* each file's real length, for appends */
	char names[MAX_FILES][32];
	int name_ino[MAX_FILES];
	int n_names, n_inos;
	struct fileio fio;
};

static void rec_push(struct recorder *r, struct op op)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->ops = realloc(r->ops, r->cap * sizeof(*r->ops));
		ck_assert_ptr_nonnull(r->ops);
	}
	r->ops[r->n++] = op;
}

static int name_find(struct recorder *r, const char *name)
{
	for (int i = 0; i < r->n_names; i++)
		if (strcmp(r->names[i], name) == 0)
			return i;
	return -1;
}

static int rec_open(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	struct recorder *r = ctx;
	int fd, k, ino;

	pthread_mutex_lock(&r->lock);
	fd = fileio_system.open(NULL, dirfd, name, flags, mode);
	if (fd < 0 || fd >= MAX_FDS) {
		pthread_mutex_unlock(&r->lock);
		return fd < 0 ? fd : -EMFILE;
	}
	k = name_find(r, name);
	if (k < 0) {
		ck_assert_int_lt(r->n_inos, MAX_FILES);
		ino = r->n_inos++;
		k = r->n_names++;
		snprintf(r->names[k], sizeof(r->names[k]), "%s", name);
		r->name_ino[k] = ino;
		r->size[ino] = 0;
		struct op op = { .kind = OP_CREATE, .ino = ino };
		snprintf(op.name, sizeof(op.name), "%s", name);
		rec_push(r, op);
	} else {
		ino = r->name_ino[k];
		if (flags & O_TRUNC) {
			rec_push(r, (struct op){ .kind = OP_TRUNC, .ino = ino, .len = 0 });
			r->size[ino] = 0;
		}
	}
	r->fd_ino[fd] = ino;
	pthread_mutex_unlock(&r->lock);
	return fd;
}

static int rec_close(void *ctx, int fd)
{
	struct recorder *r = ctx;

	pthread_mutex_lock(&r->lock);
	if (fd >= 0 && fd < MAX_FDS)
		r->fd_ino[fd] = -1;
	pthread_mutex_unlock(&r->lock);
	return fileio_system.close(NULL, fd);
}

static void rec_write(struct recorder *r, int ino, uint64_t off, const void *data, size_t len)
{
	struct op op = { .kind = OP_WRITE, .ino = ino, .off = off, .len = len };

	op.data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(op.data);
	memcpy(op.data, data, len);
	rec_push(r, op);
	if (off + len > r->size[ino])
		r->size[ino] = off + len;
}

static int rec_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	struct recorder *r = ctx;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = fileio_system.pwrite(NULL, fd, buf, len, off);
	if (!rc)
		rec_write(r, r->fd_ino[fd], off, buf, len);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static ssize_t rec_append(void *ctx, int fd, const struct iovec *iov, int n)
{
	struct recorder *r = ctx;
	uint64_t off;
	ssize_t w;

	pthread_mutex_lock(&r->lock);
	off = r->size[r->fd_ino[fd]];
	w = fileio_system.append(NULL, fd, iov, n);
	if (w > 0) {
		uint8_t *all = malloc((size_t)w);
		size_t at = 0;

		ck_assert_ptr_nonnull(all);
		for (int i = 0; i < n && at < (size_t)w; i++) {
			size_t take =
			    iov[i].iov_len < (size_t)w - at ? iov[i].iov_len : (size_t)w - at;

			memcpy(all + at, iov[i].iov_base, take);
			at += take;
		}
		rec_write(r, r->fd_ino[fd], off, all, (size_t)w);
		free(all);
	}
	pthread_mutex_unlock(&r->lock);
	return w;
}

static int rec_sync(void *ctx, int fd)
{
	struct recorder *r = ctx;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = fileio_system.sync(NULL, fd);
	/* A descriptor the recorder did not open is the overlay's directory. */
	if (!rc)
		rec_push(r, (struct op){ .kind = OP_SYNC,
		                         .ino = fd >= 0 && fd < MAX_FDS ? r->fd_ino[fd] : -1 });
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int rec_truncate(void *ctx, int fd, uint64_t len)
{
	struct recorder *r = ctx;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = fileio_system.truncate(NULL, fd, len);
	if (!rc) {
		rec_push(r, (struct op){ .kind = OP_TRUNC, .ino = r->fd_ino[fd], .len = len });
		r->size[r->fd_ino[fd]] = len;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int rec_rename(void *ctx, int dirfd, const char *from, const char *to)
{
	struct recorder *r = ctx;
	int rc, kf, kt;

	pthread_mutex_lock(&r->lock);
	rc = fileio_system.rename(NULL, dirfd, from, to);
	if (!rc) {
		struct op op = { .kind = OP_RENAME };

		snprintf(op.name, sizeof(op.name), "%s", from);
		snprintf(op.name2, sizeof(op.name2), "%s", to);
		rec_push(r, op);
		kf = name_find(r, from);
		kt = name_find(r, to);
		ck_assert_int_ge(kf, 0);
		if (kt < 0) {
			kt = r->n_names++;
			snprintf(r->names[kt], sizeof(r->names[kt]), "%s", to);
		}
		r->name_ino[kt] = r->name_ino[kf];
		r->name_ino[kf] = r->name_ino[--r->n_names];
		memcpy(r->names[kf], r->names[r->n_names], sizeof(r->names[kf]));
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int rec_punch(void *ctx, int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[OVERLAY_SECTOR];
	struct recorder *r = ctx;
	int rc;

	ck_assert_uint_le(len, sizeof(zeros));
	pthread_mutex_lock(&r->lock);
	rc = fileio_system.punch(NULL, fd, off, len);
	if (!rc) {
		uint64_t keep = r->size[r->fd_ino[fd]];

		rec_write(r, r->fd_ino[fd], off, zeros, len);
		r->size[r->fd_ino[fd]] = keep; /* a punch keeps the size */
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static size_t rec_now(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* --- the workload ------------------------------------------------------------------ */

struct write_rec {
	uint32_t sector, version;
	bool discard;      /* overlay_zero_sector, not a write */
	size_t start, end; /* the record's length before and after */
};

struct flush_rec {
	size_t start, end;
	int rc;
};

struct workload {
	struct overlay *o;
	struct recorder *rec;
	struct write_rec writes[4 * WRITES];
	atomic_size_t n_writes;
	struct flush_rec flushes[4096];
	atomic_size_t n_flushes;
	atomic_bool done;
};

/* Sector s's bytes at version v: every 512-byte piece names both, so that a tear shows. */
static void pattern(uint32_t s, uint32_t v, uint8_t out[OVERLAY_SECTOR])
{
	for (size_t i = 0; i < OVERLAY_SECTOR; i += DEV_SECTOR) {
		uint32_t words[4] = { 0x43524153u, s, v, (uint32_t)(i / DEV_SECTOR) };

		memcpy(out + i, words, sizeof(words));
		fill_random(out + i + sizeof(words), DEV_SECTOR - sizeof(words),
		            (uint64_t)s << 40 | (uint64_t)v << 8 | i / DEV_SECTOR);
	}
}

struct writer_arg {
	struct workload *w;
	uint32_t first; /* this writer owns sectors first, first + 2, ... */
	uint64_t seed;
};

/* One flush, recorded; false when the record is full. */
static bool flush_once(struct workload *w)
{
	size_t i = atomic_fetch_add(&w->n_flushes, 1);
	struct flush_rec *f;

	if (i >= 4096) {
		atomic_fetch_sub(&w->n_flushes, 1);
		return false;
	}
	f = &w->flushes[i];
	/* Not yet done: a failed flush promises nothing, and this one is in flight. */
	f->rc = -1;
	f->start = rec_now(w->rec);
	f->rc = overlay_flush(w->o);
	f->end = rec_now(w->rec);
	return true;
}

/* Records an operation on sector s about to happen; returns its slot. */
static size_t note_begin(struct workload *w, uint32_t s, uint32_t v, bool discard)
{
	size_t slot = atomic_fetch_add(&w->n_writes, 1);

	w->writes[slot].sector = s;
	w->writes[slot].version = v;
	w->writes[slot].discard = discard;
	w->writes[slot].start = rec_now(w->rec);
	return slot;
}

/*
 * Writes, two-sector writes committed as one (as vdisk_write commits a
 * request) and discards, on the writer's own sectors.
 */
static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint32_t versions[NSECT] = { 0 };
	uint8_t buf[2][OVERLAY_SECTOR];
	uint64_t x = a->seed;

	for (int i = 0; i < WRITES; i++) {
		uint32_t s, kind;
		size_t n0, n1;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		s = a->first + 2 * (uint32_t)((x >> 33) % (NSECT / 2));
		kind = (uint32_t)(x >> 20) % 8;
		if (kind == 0) {
			n0 = note_begin(a->w, s, ++versions[s], true);
			ck_assert_int_eq(overlay_zero_sector(a->w->o, s), 0);
			a->w->writes[n0].end = rec_now(a->w->rec);
		} else if (kind == 1 && s + 2 < NSECT) {
			uint64_t sectors[2] = { s, s + 2 };
			uint32_t slots[2];

			pattern(s, ++versions[s], buf[0]);
			pattern(s + 2, ++versions[s + 2], buf[1]);
			n0 = note_begin(a->w, s, versions[s], false);
			n1 = note_begin(a->w, s + 2, versions[s + 2], false);
			ck_assert_int_eq(overlay_stage(a->w->o, buf[0], &slots[0]), 0);
			ck_assert_int_eq(overlay_stage(a->w->o, buf[1], &slots[1]), 0);
			ck_assert_int_eq(overlay_commit(a->w->o, sectors, slots, 2), 0);
			a->w->writes[n0].end = a->w->writes[n1].end = rec_now(a->w->rec);
		} else {
			pattern(s, ++versions[s], buf[0]);
			n0 = note_begin(a->w, s, versions[s], false);
			ck_assert_int_eq(overlay_write_sector(a->w->o, s, buf[0]), 0);
			a->w->writes[n0].end = rec_now(a->w->rec);
		}
		/* Writers flush too, now and then: flushes, and so checkpoints, keep pace. */
		if (kind == 2)
			flush_once(a->w);
	}
	return NULL;
}

static void *flusher(void *p)
{
	struct workload *w = p;

	while (!atomic_load(&w->done) && flush_once(w))
		;
	return NULL;
}

/* --- crash images ------------------------------------------------------------------ */

struct file_img {
	struct buf durable;
	size_t *pending; /* op indices since its last sync */
	size_t n_pending, cap;
};

static void pending_push(struct file_img *f, size_t i)
{
	if (f->n_pending == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->pending = realloc(f->pending, f->cap * sizeof(*f->pending));
		ck_assert_ptr_nonnull(f->pending);
	}
	f->pending[f->n_pending++] = i;
}

struct dir_img {
	char names[MAX_FILES][32];
	int ino[MAX_FILES];
	int n;
};

static void dir_apply(struct dir_img *d, const struct op *op)
{
	int k = -1, t = -1;

	for (int i = 0; i < d->n; i++) {
		if (strcmp(d->names[i], op->name) == 0)
			k = i;
		if (op->kind == OP_RENAME && strcmp(d->names[i], op->name2) == 0)
			t = i;
	}
	if (op->kind == OP_CREATE) {
		if (k < 0) {
			k = d->n++;
			snprintf(d->names[k], sizeof(d->names[k]), "%s", op->name);
		}
		d->ino[k] = op->ino;
		return;
	}
	if (k < 0)
		return; /* its create was lost too */
	if (t < 0) {
		snprintf(d->names[k], sizeof(d->names[k]), "%s", op->name2);
		return;
	}
	d->ino[t] = d->ino[k];
	d->ino[k] = d->ino[--d->n];
	memcpy(d->names[k], d->names[d->n], sizeof(d->names[k]));
}

static void content_apply(struct buf *b, const struct op *op, uint64_t *x, bool tear)
{
	if (op->kind == OP_TRUNC) {
		if (op->len > b->len)
			ck_assert_int_eq(buf_append_zeros(b, op->len - b->len), 0);
		b->len = op->len;
		return;
	}
	if (op->off + op->len > b->len)
		ck_assert_int_eq(buf_append_zeros(b, op->off + op->len - b->len), 0);
	for (uint64_t i = 0; i < op->len; i += DEV_SECTOR) {
		uint64_t n = op->len - i < DEV_SECTOR ? op->len - i : DEV_SECTOR;

		*x = *x * 6364136223846793005ull + 1442695040888963407ull;
		if (tear && (*x >> 62) == 0)
			continue; /* this device sector did not make it */
		memcpy(b->data + op->off + i, op->data + i, n);
	}
}

/*
 * Writes into dir the files a power cut after the first k operations could
 * leave, drawn with x.
 */
static struct file_img files[MAX_FILES];

static void release_images(void)
{
	for (int i = 0; i < MAX_FILES; i++) {
		buf_free(&files[i].durable);
		free(files[i].pending);
		files[i] = (struct file_img){ 0 };
	}
}

static void make_image(const struct recorder *r, size_t k, uint64_t x, const char *dir)
{
	struct dir_img durable = { .n = 0 }, now;
	size_t dir_pending[64], n_dir = 0;

	for (int i = 0; i < MAX_FILES; i++) {
		buf_reset(&files[i].durable);
		files[i].n_pending = 0;
	}
	for (size_t i = 0; i < k; i++) {
		const struct op *op = &r->ops[i];

		switch (op->kind) {
		case OP_WRITE:
		case OP_TRUNC:
			pending_push(&files[op->ino], i);
			break;
		case OP_SYNC:
			if (op->ino < 0) {
				for (size_t j = 0; j < n_dir; j++)
					dir_apply(&durable, &r->ops[dir_pending[j]]);
				n_dir = 0;
			} else {
				struct file_img *f = &files[op->ino];

				for (size_t j = 0; j < f->n_pending; j++)
					content_apply(&f->durable, &r->ops[f->pending[j]], &x,
					              false);
				f->n_pending = 0;
			}
			break;
		case OP_CREATE:
		case OP_RENAME:
			ck_assert_uint_lt(n_dir, 64);
			dir_pending[n_dir++] = i;
			break;
		}
	}
	/* The directory: what was synced, then a prefix of the rest. */
	now = durable;
	x = x * 6364136223846793005ull + 1442695040888963407ull;
	for (size_t j = 0, keep = (x >> 33) % (n_dir + 1); j < keep; j++)
		dir_apply(&now, &r->ops[dir_pending[j]]);
	for (int i = 0; i < now.n; i++) {
		struct file_img *f = &files[now.ino[i]];
		struct buf b = { 0 };
		char path[PATH_MAX + 64];

		ck_assert_int_eq(buf_append(&b, f->durable.data, f->durable.len), 0);
		for (size_t j = 0; j < f->n_pending; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			if ((x >> 63) == 0)
				continue; /* lost */
			content_apply(&b, &r->ops[f->pending[j]], &x, (x >> 61 & 3) == 0);
		}
		snprintf(path, sizeof(path), "%s/%s", dir, now.names[i]);
		write_file(path, b.data, b.len);
		buf_free(&b);
	}
}

/* Whether sector s reads right after a crash at k: the last flush's, or a later write, whole. */
static void check_sector(const struct workload *w, size_t k, uint32_t s, enum overlay_state st,
                         const uint8_t *got, size_t image)
{
	static uint8_t want[OVERLAY_SECTOR];
	size_t acked_flush = 0;
	uint32_t acked = 0, v = 0;
	bool found = false;

	for (size_t i = 0; i < w->n_flushes; i++)
		if (w->flushes[i].rc == 0 && w->flushes[i].end <= k &&
		    w->flushes[i].start >= acked_flush)
			acked_flush = w->flushes[i].start;
	for (size_t i = 0; i < w->n_writes; i++)
		if (w->writes[i].sector == s && w->writes[i].end <= acked_flush &&
		    w->writes[i].version > acked)
			acked = w->writes[i].version;
	if (st == OVERLAY_BASE) {
		ck_assert_msg(acked == 0,
		              "image %zu (crash after op %zu): sector %u lost version %u, "
		              "flushed before",
		              image, k, s, acked);
		return;
	}
	if (st == OVERLAY_DATA)
		memcpy(&v, got + 8, 4);
	/* A discard is a version too: ZERO must be one at least as new as the flush's. */
	for (size_t i = 0; i < w->n_writes && !found; i++) {
		const struct write_rec *r = &w->writes[i];

		found = r->sector == s && r->discard == (st == OVERLAY_ZERO) &&
		        (st == OVERLAY_ZERO || r->version == v) &&
		        (r->version == acked || (r->version > acked && r->start < k));
	}
	ck_assert_msg(found,
	              "image %zu (crash after op %zu): sector %u reads %s version %u (sector "
	              "%u's bytes?); the flush covered version %u",
	              image, k, s, st == OVERLAY_ZERO ? "a discard, not" : "", v,
	              st == OVERLAY_DATA ? *(const uint32_t *)(got + 4) : s, acked);
	if (st == OVERLAY_ZERO)
		return;
	pattern(s, v, want);
	ck_assert_msg(memcmp(got, want, OVERLAY_SECTOR) == 0,
	              "image %zu (crash after op %zu): sector %u version %u is torn or foreign",
	              image, k, s, v);
}

START_TEST(test_power_cuts)
{
	static struct recorder rec;
	static struct workload w;
	struct writer_arg args[2];
	const char *env = getenv("CIRC_CRASH_IMAGES");
	size_t images = env ? strtoul(env, NULL, 10) : 1000;
	char live[PATH_MAX], scratch[PATH_MAX];
	pthread_t tw[2], tf;
	struct circ_err err;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	memset(&rec, 0, sizeof(rec));
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&rec.lock, NULL);
	for (int i = 0; i < MAX_FDS; i++)
		rec.fd_ino[i] = -1;
	rec.fio = (struct fileio){ .open = rec_open,
		                   .close = rec_close,
		                   .pwrite = rec_pwrite,
		                   .append = rec_append,
		                   .sync = rec_sync,
		                   .truncate = rec_truncate,
		                   .rename = rec_rename,
		                   .punch = rec_punch,
		                   .ctx = &rec };
	test_path(live, "live");
	make_dirs(live);
	ck_assert_msg(
	    overlay_open_io(live, NSECT * OVERLAY_SECTOR, &rec.fio, CHECKPOINT_B, &w.o, &err) == 0,
	    "%s", err.msg);
	w.rec = &rec;
	for (int i = 0; i < 2; i++) {
		args[i] =
		    (struct writer_arg){ .w = &w, .first = (uint32_t)i, .seed = 7 + (uint64_t)i };
		ck_assert_int_eq(pthread_create(&tw[i], NULL, writer, &args[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&tf, NULL, flusher, &w), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(tw[i], NULL);
	atomic_store(&w.done, true);
	pthread_join(tf, NULL);
	/* A last flush after every write, so that the workload's end is promised too. */
	ck_assert(flush_once(&w));
	ck_assert_int_eq(w.flushes[w.n_flushes - 1].rc, 0);
	overlay_close(w.o);
	/* The images must cover checkpoints (a map file each) as well as the log. */
	ck_assert_int_gt(rec.n_inos, 3);

	test_path(scratch, "crash");
	for (size_t image = 0; image < images; image++) {
		struct overlay *o;
		size_t k;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		k = (x >> 20) % (rec.n + 1);
		rm_rf(scratch);
		make_dirs(scratch);
		make_image(&rec, k, x ^ image, scratch);
		ck_assert_msg(overlay_open(scratch, NSECT * OVERLAY_SECTOR, &o, &err) == 0,
		              "image %zu (crash after op %zu of %zu): recovery failed: %s", image,
		              k, rec.n, err.msg);
		for (uint32_t s = 0; s < NSECT; s++) {
			uint8_t got[OVERLAY_SECTOR];
			enum overlay_state st;

			ck_assert_int_eq(overlay_read_sector(o, s, got, &st), 0);
			check_sector(&w, k, s, st, got, image);
		}
		overlay_close(o);
	}
	for (size_t i = 0; i < rec.n; i++)
		free(rec.ops[i].data);
	free(rec.ops);
	release_images();
}
END_TEST

Suite *overlay_crash_suite(void)
{
	Suite *s = suite_create("overlay_crash");
	TCase *tc = tcase_create("power cuts");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
