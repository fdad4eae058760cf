/* SPDX-License-Identifier: MIT */
#include "vdisk/kiosk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/file.h"
#include "util/json.h"
#include "vdisk/disk.h"
#include "vdisk/hoard.h"
#include "vdisk/image.h"
#include "vdisk/overlay.h"

/*
 * Whether err says the server could not be reached, as against a refusal:
 * a server that answers wrongly (403, 5xx, a bad signature) is never
 * "offline", and nothing boots on its word.
 */
static bool unreachable(const struct circ_err *err)
{
	return err->errnum == ENETUNREACH || err->errnum == ETIMEDOUT;
}

int kiosk_discard_writes(const char *state, const char *disk, struct circ_err *err)
{
	struct vdisk_options vo = { 0 };
	struct vdisk *vd;
	int rc;

	if (vdisk_open(state, disk, &vo, &vd, err))
		return -1;
	rc = vdisk_drop_overlay(vd);
	if (rc)
		rc = err_set(err, -rc, "dropping the writes of disk '%s'", disk);
	return vdisk_close_after(vd, rc, err);
}

/* Offline: the disk boots only if every block of its version is here. */
static int check_all_here(const char *state, const char *disk, const struct kiosk_options *o,
                          struct kiosk_result *res, const struct circ_err *why,
                          struct circ_err *err)
{
	struct vdisk_options vo = { .read_only = true, .cache_size = o->cache_size };
	struct hoard_result h;
	struct vdisk *vd;

	if (vdisk_open(state, disk, &vo, &vd, err))
		return -1;
	hoard_count(vd, &h);
	res->to = vdisk_version(vd);
	if (vdisk_close_after(vd, 0, err))
		return -1;
	if (h.missing)
		return err_set(err, ENETUNREACH,
		               "the server cannot be reached (%s), and version %" PRIu64
		               " of disk '%s' is not all here (%" PRIu64 " of %" PRIu64
		               " blocks missing): nothing booted; circ fetch %s while online",
		               why->msg, res->to, disk, h.missing, h.blocks, disk);
	res->offline = true;
	snprintf(res->note, sizeof(res->note),
	         "offline: the server cannot be reached; booting version %" PRIu64
	         " of '%s', all of it verified here",
	         res->to, disk);
	return 0;
}

/* Whether DISK's server answers with a valid pointer: err says why not. */
static int probe(const char *state, const char *disk, const struct kiosk_options *o,
                 struct circ_err *err)
{
	char *dir = state_disk_dir(state, disk);
	struct disk_conf conf;
	struct repo *repo = NULL;
	struct key *pub = NULL;
	struct pointer pt;
	int rc = -1;

	if (!dir)
		return err_set(err, ENOMEM, "out of memory");
	if (disk_conf_load(dir, &conf, err) == 0) {
		rc = state_load_pinned_key(state, conf.image, &pub, err) ||
		     state_open_repo(&conf, o->net, &repo, err) ||
		     image_load_pointer(repo, pub, conf.image, (uint64_t)time(NULL), &pt, err);
		disk_conf_release(&conf);
	}
	repo_close(repo);
	key_free(pub);
	free(dir);
	return rc ? -1 : 0;
}

/* Local writes of DISK, in sectors (0 for a disk never written). */
static int local_writes(const char *state, const char *disk, uint64_t *sectors,
                        struct circ_err *err)
{
	struct vdisk_options vo = { .read_only = true };
	struct vdisk *vd;

	/* Opening the disk checks its lock and recovers its overlay. */
	if (vdisk_open(state, disk, &vo, &vd, err))
		return -1;
	*sectors = vdisk_local_writes(vd) / OVERLAY_SECTOR;
	return vdisk_close_after(vd, 0, err);
}

int kiosk_prepare(const char *state, const char *disk, const struct kiosk_options *o,
                  struct kiosk_result *res, struct circ_err *err)
{
	struct update_options uo = { 0 };
	struct update_result up;
	struct disk_conf conf;
	struct circ_err uerr;
	char *dir = state_disk_dir(state, disk);
	uint64_t writes = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!dir)
		return err_set(err, ENOMEM, "out of memory");
	rc = access(dir, F_OK);
	if (rc && (!o->url || !o->name || !o->key_path)) {
		free(dir);
		return err_set(err, ENOENT, "no disk '%s' here: give URL NAME --key PUB to pull it",
		               disk);
	}
	if (rc) {
		const char *urls[1] = { o->url };

		free(dir);
		if (state_pull(state, disk, urls, 1, o->name, o->key_path, o->net, &res->to, err)) {
			if (unreachable(err))
				return err_prefix(err, "disk '%s' was never pulled here and", disk);
			return -1;
		}
		res->pulled = true;
		res->from = res->to;
		if (!o->reset)
			return 0;
		return kiosk_discard_writes(state, disk, err);
	}
	rc = disk_conf_load(dir, &conf, err);
	free(dir);
	if (rc)
		return -1;
	res->from = res->to = conf.version;
	if (o->name && (conf.blank || strcmp(o->name, conf.image) != 0)) {
		err_set(err, EINVAL, "disk '%s' here is %s, not image %s", disk,
		        conf.blank ? "a blank disk" : conf.image, o->name);
		disk_conf_release(&conf);
		return -1;
	}
	if (conf.blank || conf.layer) {
		/* Its base does not move (a blank disk, or one holding check-ins). */
		disk_conf_release(&conf);
		return o->reset ? kiosk_discard_writes(state, disk, err) : 0;
	}
	disk_conf_release(&conf);
	if (!o->reset && local_writes(state, disk, &writes, err))
		return -1;
	if (writes) {
		snprintf(res->note, sizeof(res->note),
		         "disk '%s' stays at version %" PRIu64 ": it holds local writes "
		         "(--reset drops them, or circ update --keep-overlay)",
		         disk, res->from);
		/* It does not move, but it must still be all here if the server is away. */
		if (probe(state, disk, o, &uerr) == 0 || !unreachable(&uerr))
			return 0;
		return check_all_here(state, disk, o, res, &uerr, err);
	}
	uo.mode = o->reset ? UPDATE_DISCARD_OVERLAY : UPDATE_REFUSE_OVERLAY;
	uo.net = o->net;
	uo.cache_size = o->cache_size;
	if (state_update(state, disk, &uo, &up, &uerr) == 0) {
		res->to = up.to;
		return 0;
	}
	if (!unreachable(&uerr)) {
		*err = uerr;
		return -1;
	}
	if (o->reset && kiosk_discard_writes(state, disk, err))
		return -1;
	return check_all_here(state, disk, o, res, &uerr, err);
}

int bootlog_append(const char *state, const char *disk, const struct boot_record *r,
                   struct circ_err *err)
{
	static const uint8_t zero[32];
	struct buf b = { 0 };
	struct json j;
	char *path = NULL, *dir = state_disk_dir(state, disk);
	int fd = -1, rc = -1;

	json_init(&j, &b);
	json_object_begin(&j, NULL);
	json_u64(&j, "time", r->time);
	json_str(&j, "image", r->image);
	json_u64(&j, "version", r->version);
	json_hex(&j, "manifest_sha256",
	         memcmp(r->manifest_sha256, zero, 32) ? r->manifest_sha256 : NULL, 32);
	json_hex(&j, "kernel_sha256", r->have_kernel ? r->kernel_sha256 : NULL, 32);
	json_hex(&j, "initrd_sha256", r->have_initrd ? r->initrd_sha256 : NULL, 32);
	json_str(&j, "cmdline", r->cmdline ? r->cmdline : "");
	json_str(&j, "vmm", r->vmm);
	json_bool(&j, "offline", r->offline);
	json_str(&j, "outcome", r->outcome);
	json_object_end(&j);
	if (!dir || asprintf(&path, "%s/boots", dir) < 0 || json_finish(&j)) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* Bounded: past its size the record moves to boots.1 (kept, replacing the older). */
	{
		struct stat st;
		char *old = NULL;

		if (stat(path, &st) == 0 && (uint64_t)st.st_size > BOOTLOG_MAX &&
		    asprintf(&old, "%s.1", path) >= 0) {
			rename(path, old);
			free(old);
		}
	}
	/* One write of a whole line, appended: lines of two runs never mix. */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd)) {
		err_sys(err, errno, "recording the boot in %s", path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	free(path);
	free(dir);
	return rc;
}
