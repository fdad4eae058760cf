/* SPDX-License-Identifier: MIT */
/*
 * Just enough of an AML encoder (ACPI 6.5, chapter 20) for hv's DSDT: names,
 * scopes, devices, packages, integers and buffers. QEMU, Firecracker and
 * cloud-hypervisor build their tables the same way, at start-up, so that a
 * table can say how many CPUs and which PCI slots this VM has; iasl is a
 * compiler for static tables, not a library.
 *
 * Objects that contain others (scope, device, package) are opened with
 * aml_*_begin, which returns a mark, filled, and closed with aml_end(mark):
 * their PkgLength is only known at the end. Errors (out of memory, a bad
 * name or EISA ID, a mark that cannot be a begin's) stick: every later call
 * does nothing, and aml_finish reports the first.
 */
#ifndef CIRC_HV_AML_H
#define CIRC_HV_AML_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct aml {
	struct buf out;
	int error; /* errno of the first failure, 0 */
	const char *what;
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);
/* 0 and the encoded bytes in a->out, or -1 and err set with the first failure. */
CIRC_MUST_CHECK int aml_finish(struct aml *a, struct circ_err *err);

/*
 * A name path: an optional leading '\' and 4-character segments joined by
 * '.', each [A-Z_][A-Z0-9_]*, padded with '_' when shorter ("\\_SB.PCI0").
 */
size_t aml_scope_begin(struct aml *a, const char *path);
size_t aml_device_begin(struct aml *a, const char *path);
size_t aml_package_begin(struct aml *a, uint8_t elements);
void aml_end(struct aml *a, size_t mark);

/* Name(path, <the object that follows>) */
void aml_name(struct aml *a, const char *path);
/* The shortest encoding of v: Zero, One, or a byte, word, dword or qword constant. */
void aml_integer(struct aml *a, uint64_t v);
/* EisaId("PNP0A03"): three letters and four hex digits, compressed to a dword. */
void aml_eisaid(struct aml *a, const char *id);
/* Buffer(){bytes}: a resource template, for one. */
void aml_buffer(struct aml *a, const void *bytes, size_t len);

/*
 * Resource descriptors (ACPI 6.5, 6.4) for _CRS buffers, appended to a plain
 * buffer. Address ranges are [min, max], producer, fixed, positive decode.
 */
int aml_res_bus_numbers(struct buf *b, uint16_t min, uint16_t max);
int aml_res_io_fixed(struct buf *b, uint16_t port, uint8_t len);
int aml_res_io_range(struct buf *b, uint16_t min, uint16_t max);
CIRC_MUST_CHECK int aml_res_mem32_range(struct buf *b, uint32_t min, uint32_t max);
/* The end tag; its checksum 0 means "no checksum". */
int aml_res_end(struct buf *b);

/* AML opcodes and prefixes, for readers of the bytes (tests, the test guest). */
#define AML_ZERO_OP       0x00
#define AML_ONE_OP        0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f
#define AML_ROOT_CHAR     0x5c
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP     0x82 /* after AML_EXT_OP_PREFIX */

#endif
