/* SPDX-License-Identifier: MIT */
#include "client/bootkit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/file.h"
#include "vdisk/disk.h"
#include "vdisk/image.h"

void bootkit_release(struct bootkit *bk)
{
	free(bk->kernel);
	free(bk->initrd);
	free(bk->cmdline);
	memset(bk, 0, sizeof(*bk));
}

int bootkit_file_sha256(const char *path, uint8_t out[32], struct circ_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = fd < 0 ? err_sys(err, errno, "%s", path)
		            : err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		EVP_DigestUpdate(ctx, chunk, (size_t)n);
	if (n < 0 || EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		rc = err_sys(err, errno, "reading %s", path);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int bootkit_check_kernel(const char *path, struct circ_err *err)
{
	uint8_t head[0x206];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(err, errno, "kernel %s", path);
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n >= 5 && memcmp(head,
	                     "\x7f"
	                     "ELF",
	                     4) == 0)
		return head[4] == 2 ? 0
		                    : err_set(err, EINVAL,
		                              "kernel %s is a 32-bit ELF file, not ELF64", path);
	if (n == (ssize_t)sizeof(head) && memcmp(head + 0x202, "HdrS", 4) == 0)
		return 0;
	return err_set(err, EINVAL, "kernel %s is neither a bzImage nor an ELF64 file", path);
}

static int version_identity(struct vdisk *vd, struct bootkit *bk, struct circ_err *err)
{
	const struct manifest *m = vdisk_manifest(vd);
	struct buf raw = { 0 };
	char *path;
	int rc;

	if (!m)
		return 0;
	snprintf(bk->image, sizeof(bk->image), "%s", m->name);
	bk->version = m->version;
	path = state_manifest_path(vdisk_dir(vd), m->version);
	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_read_all(path, MANIFEST_MAX_LEN, &raw, err);
	if (!rc)
		manifest_file_hash(raw.data, raw.len, bk->manifest_sha256);
	buf_free(&raw);
	free(path);
	return rc;
}

int bootkit_identify(const char *state, const char *disk, struct bootkit *bk, struct circ_err *err)
{
	struct vdisk_options vo = { .read_only = true };
	struct vdisk *vd;
	int rc;

	memset(bk, 0, sizeof(*bk));
	if (vdisk_open(state, disk, &vo, &vd, err))
		return -1;
	rc = version_identity(vd, bk, err);
	return vdisk_close_after(vd, rc, err);
}

static int write_one(struct vdisk *vd, const struct manifest_file *f, const char *dir,
                     const char *name, char **out, uint8_t sha[32], struct circ_err *err)
{
	if (asprintf(out, "%s/%s", dir, name) < 0) {
		*out = NULL;
		return err_set(err, ENOMEM, "out of memory");
	}
	if (image_write_bootfile(vdisk_base_store(vd), vdisk_manifest(vd), f, *out, err))
		return -1;
	return bootkit_file_sha256(*out, sha, err);
}

int bootkit_extract(const char *state, const char *disk, struct bootkit *bk, struct circ_err *err)
{
	struct vdisk_options vo = { .read_only = true };
	const struct manifest *m;
	struct vdisk *vd;
	char *dir = NULL;
	int rc = -1;

	memset(bk, 0, sizeof(*bk));
	if (vdisk_open(state, disk, &vo, &vd, err))
		return -1;
	m = vdisk_manifest(vd);
	if (!m || !m->kernel.size) {
		err_set(err, ENOENT,
		        "disk '%s' has no boot kit (its version was published without "
		        "--kernel): give --kernel",
		        disk);
		goto out;
	}
	if (version_identity(vd, bk, err))
		goto out;
	if (asprintf(&dir, "%s/boot", vdisk_dir(vd)) < 0) {
		dir = NULL;
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (file_mkdirs(dir, 0755, err) ||
	    write_one(vd, &m->kernel, dir, "kernel", &bk->kernel, bk->kernel_sha256, err) ||
	    (m->initrd.size &&
	     write_one(vd, &m->initrd, dir, "initrd", &bk->initrd, bk->initrd_sha256, err)))
		goto out;
	bk->cmdline = strdup(m->cmdline);
	if (!bk->cmdline) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(dir);
	rc = vdisk_close_after(vd, rc, err);
	if (rc)
		bootkit_release(bk);
	return rc;
}
