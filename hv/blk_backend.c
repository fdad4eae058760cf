/* SPDX-License-Identifier: MIT */
#include "hv/blk_backend.h"

#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/disk.h"

void blk_backend_close(struct blk_backend *be)
{
	if (be->ops && be->ops->close)
		be->ops->close(be->ctx);
	memset(be, 0, sizeof(*be));
}

/* Up to 20 bytes of name, NUL-padded: the guest sees it as /sys/block/vdX/serial. */
static void set_serial(struct blk_backend *be, const char *name)
{
	size_t n = strlen(name);

	memset(be->serial, 0, sizeof(be->serial));
	memcpy(be->serial, name, n < sizeof(be->serial) ? n : sizeof(be->serial));
}

/* Raw files and block devices. */

struct file_ctx {
	int fd;
	bool read_only;
};

static int file_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct file_ctx *f = ctx;
	int rc = file_pread_full(f->fd, buf, len, off);

	/* The file shrank under us: report it rather than invent zeros. */
	return rc == -ENODATA ? -EIO : rc;
}

static int file_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct file_ctx *f = ctx;

	if (f->read_only)
		return -EROFS;
	return file_pwrite_full(f->fd, buf, len, off);
}

static int file_flush(void *ctx)
{
	struct file_ctx *f = ctx;

	if (f->read_only)
		return 0;
	return fdatasync(f->fd) ? -errno : 0;
}

static int file_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct file_ctx *f = ctx;

	if (f->read_only)
		return -EROFS;
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		/* Discard is a hint: a file system without holes just keeps the data. */
		return errno == EOPNOTSUPP ? 0 : -errno;
	return 0;
}

static void file_close(void *ctx)
{
	struct file_ctx *f = ctx;

	close(f->fd);
	free(f);
}

static const struct blk_backend_ops file_ops = {
	.read = file_read,
	.write = file_write,
	.flush = file_flush,
	.discard = file_discard,
	.close = file_close,
};

int blk_backend_open_file(const char *path, bool read_only, struct blk_backend *out,
                          struct circ_err *err)
{
	struct file_ctx *f;
	struct stat st;
	uint64_t size;
	const char *base;
	int fd;

	memset(out, 0, sizeof(*out));
	fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "opening disk %s", path);
	if (fstat(fd, &st)) {
		err_sys(err, errno, "examining disk %s", path);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size)) {
			err_sys(err, errno, "getting the size of block device %s", path);
			goto fail;
		}
	} else {
		err_set(err, EINVAL, "disk %s is neither a file nor a block device", path);
		goto fail;
	}
	if (size < 512) {
		err_set(err, EINVAL, "disk %s is smaller than one 512-byte sector", path);
		goto fail;
	}
	f = malloc(sizeof(*f));
	if (!f) {
		err_sys(err, ENOMEM, "opening disk %s", path);
		goto fail;
	}
	f->fd = fd;
	f->read_only = read_only;
	out->ops = &file_ops;
	out->ctx = f;
	out->size = size;
	out->read_only = read_only;
	base = strrchr(path, '/');
	set_serial(out, base && base[1] ? base + 1 : path);
	return 0;
fail:
	close(fd);
	return -1;
}

/* circ vdisks: the disk API already has the right shape. */

static int vd_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return vdisk_read(ctx, buf, len, off);
}

static int vd_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	return vdisk_write(ctx, buf, len, off);
}

static int vd_flush(void *ctx)
{
	return vdisk_flush(ctx);
}

static int vd_discard(void *ctx, uint64_t off, uint64_t len)
{
	return vdisk_discard(ctx, off, len);
}

static const struct blk_backend_ops vdisk_ops = {
	.read = vd_read,
	.write = vd_write,
	.flush = vd_flush,
	.discard = vd_discard,
	.close = NULL, /* the caller owns the vdisk */
};

int blk_backend_from_vdisk(struct vdisk *vd, struct blk_backend *out)
{
	const char *name;

	memset(out, 0, sizeof(*out));
	if (!vd)
		return -EINVAL;
	out->ops = &vdisk_ops;
	out->ctx = vd;
	out->size = vdisk_size(vd);
	out->read_only = vdisk_read_only(vd);
	name = vdisk_image(vd);
	set_serial(out, name && *name ? name : "circ");
	return 0;
}

/* Host memory. */

struct mem_ctx {
	uint8_t *data;
	uint64_t size;
};

/* Offsets are checked by the device already; checked again so no caller can overrun. */
static bool mem_in_range(const struct mem_ctx *mc, uint64_t off, uint64_t len)
{
	return off <= mc->size && len <= mc->size - off;
}

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem_ctx *mc = ctx;

	if (!mem_in_range(mc, off, len))
		return -EIO;
	memcpy(buf, mc->data + off, len);
	return 0;
}

static int mem_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct mem_ctx *mc = ctx;

	if (!mem_in_range(mc, off, len))
		return -EIO;
	memcpy(mc->data + off, buf, len);
	return 0;
}

static int mem_flush(void *ctx)
{
	(void)ctx;
	return 0;
}

static int mem_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct mem_ctx *mc = ctx;

	if (!mem_in_range(mc, off, len))
		return -EIO;
	memset(mc->data + off, 0, len);
	return 0;
}

static void mem_close(void *ctx)
{
	struct mem_ctx *mc = ctx;

	munmap(mc->data, mc->size);
	free(mc);
}

static const struct blk_backend_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.flush = mem_flush,
	.discard = mem_discard,
	.close = mem_close,
};

int blk_backend_open_memory(uint64_t size, struct blk_backend *out)
{
	struct mem_ctx *mc;

	memset(out, 0, sizeof(*out));
	if (size < 512 || size > SIZE_MAX)
		return -EINVAL;
	mc = malloc(sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	/* Untouched pages cost nothing, so a large benchmark disk is cheap. */
	mc->data = mmap(NULL, size, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mc->data == MAP_FAILED) {
		int e = errno;

		free(mc);
		return -e;
	}
	mc->size = size;
	out->ops = &mem_ops;
	out->ctx = mc;
	out->size = size;
	set_serial(out, "circ-memory");
	return 0;
}
