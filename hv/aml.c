/* SPDX-License-Identifier: MIT */
#include "hv/aml.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define PKGLEN_RESERVE 4          /* the longest PkgLength; shrunk when the object closes */
#define PKGLEN_MAX     0x0fffffff /* 28 bits */
#define NAME_SEG       4
#define MAX_SEGS       8

/* Large resource items (ACPI 6.5, 6.4.3): tag, then a 16-bit length. */
#define RES_WORD_ADDRESS  0x88
#define RES_DWORD_ADDRESS 0x87
#define RES_IO_PORT       0x47 /* small item: tag 0x08, length 7 */
#define RES_END_TAG       0x79 /* small item: tag 0x0f, length 1 */
#define RES_TYPE_MEM      0
#define RES_TYPE_IO       1
#define RES_TYPE_BUS      2
#define RES_FIXED_RANGE   0x0c /* producer, positive decode, min and max fixed */
#define RES_IO_ENTIRE     0x03 /* ISA and non-ISA ports */
#define RES_MEM_RW_UC     0x01 /* read-write, not cacheable: device registers */
#define RES_IO_DECODE16   0x01

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	buf_free(&a->out);
}

static void fail(struct aml *a, int error, const char *what)
{
	if (!a->error) {
		a->error = error;
		a->what = what;
	}
}

int aml_finish(struct aml *a, struct circ_err *err)
{
	if (a->error)
		return err_set(err, a->error, "building AML: %s", a->what);
	return 0;
}

static void emit(struct aml *a, const void *p, size_t len)
{
	if (!a->error && buf_append(&a->out, p, len))
		fail(a, ENOMEM, "out of memory");
}

static void emit_byte(struct aml *a, uint8_t v)
{
	emit(a, &v, 1);
}

static bool seg_char_ok(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* NameString (20.2.2): RootChar? (NameSeg | DualNamePrefix 2*NameSeg | MultiNamePrefix n NameSeg*n)
 */
static void emit_name(struct aml *a, const char *path)
{
	uint8_t segs[MAX_SEGS][NAME_SEG];
	size_t n = 0;
	bool root = path[0] == '\\';
	const char *p = path + root;

	for (;;) {
		size_t len = 0;

		if (n == MAX_SEGS)
			return fail(a, EINVAL, "name path too long");
		memset(segs[n], '_', NAME_SEG);
		while (p[len] && p[len] != '.') {
			if (len == NAME_SEG || !seg_char_ok(p[len], len == 0))
				return fail(a, EINVAL, "bad name segment");
			segs[n][len] = (uint8_t)p[len];
			len++;
		}
		if (len == 0)
			return fail(a, EINVAL, "empty name segment");
		n++;
		p += len;
		if (!*p)
			break;
		p++;
	}
	if (root)
		emit_byte(a, AML_ROOT_CHAR);
	if (n == 2)
		emit_byte(a, AML_DUAL_NAME);
	if (n > 2) {
		emit_byte(a, AML_MULTI_NAME);
		emit_byte(a, (uint8_t)n);
	}
	for (size_t i = 0; i < n; i++)
		emit(a, segs[i], NAME_SEG);
}

/* Opens an object whose PkgLength follows its opcode; the mark is where the PkgLength goes. */
static size_t begin(struct aml *a)
{
	static const uint8_t zero[PKGLEN_RESERVE];
	size_t mark = a->out.len;

	emit(a, zero, sizeof(zero));
	return mark;
}

void aml_end(struct aml *a, size_t mark)
{
	size_t body, n;
	uint8_t *p;

	if (a->error)
		return;
	if (mark > a->out.len || a->out.len - mark < PKGLEN_RESERVE)
		return fail(a, EINVAL, "aml_end without a matching begin");
	body = a->out.len - mark - PKGLEN_RESERVE;
	/* PkgLength counts its own bytes: 1 byte holds 6 bits, 2 to 4 hold 4 + 8 each. */
	if (body + 1 <= 0x3f)
		n = 1;
	else if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body + 4 <= PKGLEN_MAX)
		n = 4;
	else
		return fail(a, E2BIG, "object too large for a PkgLength");
	p = a->out.data + mark;
	if (n == 1) {
		p[0] = (uint8_t)(body + 1);
	} else {
		size_t len = body + n;

		p[0] = (uint8_t)((n - 1) << 6 | (len & 0xf));
		for (size_t i = 1; i < n; i++)
			p[i] = (uint8_t)(len >> (4 + 8 * (i - 1)));
	}
	memmove(p + n, p + PKGLEN_RESERVE, body);
	a->out.len -= PKGLEN_RESERVE - n;
}

/* Scopes and devices: the PkgLength, then the name, then what they hold. */
static size_t begin_named(struct aml *a, const char *path)
{
	size_t mark = begin(a);

	emit_name(a, path);
	return mark;
}

size_t aml_scope_begin(struct aml *a, const char *path)
{
	emit_byte(a, AML_SCOPE_OP);
	return begin_named(a, path);
}

size_t aml_device_begin(struct aml *a, const char *path)
{
	emit_byte(a, AML_EXT_OP_PREFIX);
	emit_byte(a, AML_DEVICE_OP);
	return begin_named(a, path);
}

size_t aml_package_begin(struct aml *a, uint8_t elements)
{
	size_t mark;

	emit_byte(a, AML_PACKAGE_OP);
	mark = begin(a);
	emit_byte(a, elements);
	return mark;
}

void aml_name(struct aml *a, const char *path)
{
	emit_byte(a, AML_NAME_OP);
	emit_name(a, path);
}

void aml_integer(struct aml *a, uint64_t v)
{
	uint8_t le[8];
	uint8_t prefix;
	size_t len;

	if (v <= 1)
		return emit_byte(a, v ? AML_ONE_OP : AML_ZERO_OP);
	if (v <= UINT8_MAX) {
		prefix = AML_BYTE_PREFIX;
		len = 1;
	} else if (v <= UINT16_MAX) {
		prefix = AML_WORD_PREFIX;
		len = 2;
	} else if (v <= UINT32_MAX) {
		prefix = AML_DWORD_PREFIX;
		len = 4;
	} else {
		prefix = AML_QWORD_PREFIX;
		len = 8;
	}
	put_u64le(le, v);
	emit_byte(a, prefix);
	emit(a, le, len);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7)
		return fail(a, EINVAL, "an EISA ID is 7 characters");
	/* Three letters, 5 bits each ('A' is 1), then four hex digits. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return fail(a, EINVAL, "bad EISA ID vendor");
		v = v << 5 | (uint32_t)(id[i] - 'A' + 1);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);

		if (d < 0)
			return fail(a, EINVAL, "bad EISA ID product");
		v = v << 4 | (uint32_t)d;
	}
	/* 31 bits, vendor on top, read by the OS as big-endian bytes. */
	aml_integer(a, __builtin_bswap32(v));
}

void aml_buffer(struct aml *a, const void *bytes, size_t len)
{
	size_t mark;

	emit_byte(a, AML_BUFFER_OP);
	mark = begin(a);
	aml_integer(a, len);
	emit(a, bytes, len);
	aml_end(a, mark);
}

static int res_address(struct buf *b, uint8_t tag, uint8_t type, uint8_t type_flags, uint64_t min,
                       uint64_t max, unsigned width)
{
	uint8_t d[3 + 3 + 5 * 8];
	uint8_t *f = d + 6;
	uint64_t fields[5] = { 0, min, max, 0, max - min + 1 }; /* granularity .. length */
	size_t len = 3 + 5 * (size_t)width;

	d[0] = tag;
	put_u16le(d + 1, (uint16_t)len);
	d[3] = type;
	d[4] = RES_FIXED_RANGE;
	d[5] = type_flags;
	for (int i = 0; i < 5; i++, f += width) {
		uint8_t le[8];

		put_u64le(le, fields[i]);
		memcpy(f, le, width);
	}
	return buf_append(b, d, 3 + len);
}

int aml_res_bus_numbers(struct buf *b, uint16_t min, uint16_t max)
{
	return res_address(b, RES_WORD_ADDRESS, RES_TYPE_BUS, 0, min, max, 2);
}

int aml_res_io_range(struct buf *b, uint16_t min, uint16_t max)
{
	return res_address(b, RES_WORD_ADDRESS, RES_TYPE_IO, RES_IO_ENTIRE, min, max, 2);
}

int aml_res_mem32_range(struct buf *b, uint32_t min, uint32_t max)
{
	return res_address(b, RES_DWORD_ADDRESS, RES_TYPE_MEM, RES_MEM_RW_UC, min, max, 4);
}

int aml_res_io_fixed(struct buf *b, uint16_t port, uint8_t len)
{
	uint8_t d[8] = { RES_IO_PORT, RES_IO_DECODE16 };

	put_u16le(d + 2, port);
	put_u16le(d + 4, port);
	d[6] = 1; /* alignment */
	d[7] = len;
	return buf_append(b, d, sizeof(d));
}

int aml_res_end(struct buf *b)
{
	static const uint8_t d[2] = { RES_END_TAG, 0 };

	return buf_append(b, d, sizeof(d));
}
