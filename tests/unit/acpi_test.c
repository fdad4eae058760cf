/* SPDX-License-Identifier: MIT */
/*
 * hv's ACPI: the AML encoder, the tables (checked here, and loaded and run
 * by ACPICA's acpiexec, the interpreter Linux uses), and the PM1 registers
 * and i8042 that end the VM.
 */
#include <stdio.h>
#include <unistd.h>

#include "hv/acpi.h"
#include "hv/acpi_pm.h"
#include "hv/aml.h"
#include "hv/i8042.h"
#include "tests/unit/boot_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* ---- the AML encoder ---- */

static void expect_bytes(struct aml *a, const uint8_t *want, size_t len)
{
	struct circ_err err = { 0 };

	ck_assert_msg(aml_finish(a, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(a->out.len, len);
	ck_assert_int_eq(memcmp(a->out.data, want, len), 0);
}

/* Decodes a PkgLength; returns its value and sets *n to its bytes. */
static size_t pkglength(const uint8_t *p, size_t *n)
{
	size_t v;

	*n = (size_t)(p[0] >> 6) + 1;
	if (*n == 1)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (size_t i = 1; i < *n; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

/* Around each boundary of the 1-, 2-, 3- and 4-byte PkgLength. */
static const size_t buffer_sizes[] = { 0,    1,    58,   59,   60,      61,      4086,
	                               4087, 4088, 4095, 4096, 0xffff9, 0xffffa, 0x100000 };

START_TEST(test_aml_pkglength)
{
	size_t len = buffer_sizes[_i], n, body, size_len;
	struct buf data = { 0 };
	struct aml a;

	ck_assert_int_eq(buf_append_zeros(&data, len), 0);
	fill_random(data.data, len, len);
	aml_init(&a);
	aml_buffer(&a, data.data, len);
	ck_assert_int_eq(a.error, 0);
	ck_assert_uint_eq(a.out.data[0], AML_BUFFER_OP);
	body = pkglength(a.out.data + 1, &n);
	/* The PkgLength counts itself and everything after it, and is as short as it can be. */
	ck_assert_uint_eq(1 + body, a.out.len);
	ck_assert_uint_eq(n, body <= 0x3f ? 1 : body <= 0xfff ? 2 : body <= 0xfffff ? 3 : 4);
	size_len = len <= 1 ? 1 : len <= 0xff ? 2 : len <= 0xffff ? 3 : 5;
	ck_assert_uint_eq(a.out.len, 1 + n + size_len + len);
	if (len)
		ck_assert_int_eq(memcmp(a.out.data + 1 + n + size_len, data.data, len), 0);
	aml_free(&a);
	buf_free(&data);
}
END_TEST

START_TEST(test_aml_nesting)
{
	/* Scope(\_SB) { Device(PCI0) { Name(_UID, 0x1234) } } */
	/* clang-format off */
	static const uint8_t want[] = {
		AML_SCOPE_OP, 21, '\\', '_', 'S', 'B', '_',
		AML_EXT_OP_PREFIX, AML_DEVICE_OP, 13, 'P', 'C', 'I', '0',
		AML_NAME_OP, '_', 'U', 'I', 'D', AML_WORD_PREFIX, 0x34, 0x12,
	};
	/* clang-format on */
	struct aml a;
	size_t scope, dev;

	aml_init(&a);
	scope = aml_scope_begin(&a, "\\_SB");
	dev = aml_device_begin(&a, "PCI0");
	aml_name(&a, "_UID");
	aml_integer(&a, 0x1234);
	aml_end(&a, dev);
	aml_end(&a, scope);
	expect_bytes(&a, want, sizeof(want));
	aml_free(&a);
}
END_TEST

START_TEST(test_aml_names)
{
	static const uint8_t dual[] = { AML_NAME_OP, '\\', AML_DUAL_NAME, '_', 'S', 'B',
		                        '_',         'P',  'C',           'I', '0' };
	static const uint8_t multi[] = { AML_NAME_OP, AML_MULTI_NAME,
		                         3,           'A',
		                         '_',         '_',
		                         '_',         'B',
		                         '1',         '_',
		                         '_',         'C',
		                         '_',         '_',
		                         '_' };
	static const char *const bad[] = { "",   "1ABC", "ABCDE", "A..B", "pci0",
		                           "A.", "\\",   ".A",    "A-B",  "A.B.C.D.E.F.G.H.I" };
	struct circ_err err = { 0 };
	struct aml a;

	aml_init(&a);
	aml_name(&a, "\\_SB.PCI0");
	expect_bytes(&a, dual, sizeof(dual));
	aml_free(&a);

	aml_init(&a);
	aml_name(&a, "A.B1.C");
	expect_bytes(&a, multi, sizeof(multi));
	aml_free(&a);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		aml_name(&a, bad[i]);
		aml_integer(&a, 0);
		ck_assert_msg(aml_finish(&a, &err) == -1, "'%s' accepted", bad[i]);
		ck_assert_err_has(&err, "name");
		aml_free(&a);
	}
}
END_TEST

START_TEST(test_aml_integers)
{
	static const uint8_t want[] = {
		AML_ZERO_OP,
		AML_ONE_OP,
		AML_BYTE_PREFIX,
		2,
		AML_BYTE_PREFIX,
		0xff,
		AML_WORD_PREFIX,
		0x00,
		0x01,
		AML_DWORD_PREFIX,
		0x00,
		0x00,
		0x01,
		0x00,
		AML_DWORD_PREFIX,
		0xff,
		0xff,
		0xff,
		0xff,
		AML_QWORD_PREFIX,
		0,
		0,
		0,
		0,
		1,
		0,
		0,
		0,
		/* EisaId("PNP0A03"): what iasl writes for a PCI bus */
		AML_DWORD_PREFIX,
		0x41,
		0xd0,
		0x0a,
		0x03,
	};
	struct aml a;

	aml_init(&a);
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 2);
	aml_integer(&a, 0xff);
	aml_integer(&a, 0x100);
	aml_integer(&a, 0x10000);
	aml_integer(&a, 0xffffffff);
	aml_integer(&a, 1ull << 32);
	aml_eisaid(&a, "PNP0A03");
	expect_bytes(&a, want, sizeof(want));
	aml_free(&a);
}
END_TEST

START_TEST(test_aml_errors_stick)
{
	static const char *const bad_ids[] = { "PNP0A0", "PNP0A033", "pnp0A03", "PNP0G03" };
	struct circ_err err = { 0 };
	struct aml a;

	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		aml_init(&a);
		aml_eisaid(&a, bad_ids[i]);
		ck_assert_msg(aml_finish(&a, &err) == -1, "'%s' accepted", bad_ids[i]);
		ck_assert_err_has(&err, "EISA ID");
		aml_free(&a);
	}
	/* An end without its begin fails, and nothing after the first error is written. */
	aml_init(&a);
	aml_integer(&a, 5);
	aml_end(&a, 0);
	aml_integer(&a, 7);
	ck_assert_int_eq(aml_finish(&a, &err), -1);
	ck_assert_err_has(&err, "begin");
	ck_assert_uint_eq(a.out.len, 2);
	aml_free(&a);
}
END_TEST

/* ---- the tables ---- */

static const unsigned acpi_cpu_counts[] = { 1, 2, 27, MPTABLE_MAX_CPUS };

START_TEST(test_acpi_tables)
{
	const struct mptable_pci_irq irqs[] = { { 1, 16 }, { 2, 17 }, { 31, 23 } };
	unsigned cpus = acpi_cpu_counts[_i];
	struct circ_err err = { 0 };
	struct acpi_seen s;
	struct guest_mem m, clean;
	const uint8_t *fadt;

	alloc_mem(&m, 16 * MiB);
	alloc_mem(&clean, 16 * MiB);
	memset(gp(&m, ACPI_START, ACPI_END - ACPI_START), 0xa5, ACPI_END - ACPI_START);
	ck_assert_msg(acpi_write(&m, cpus, irqs, 3, &err) == 0, "%s", err.msg);
	ck_assert_msg(acpi_write(&clean, cpus, irqs, 3, &err) == 0, "%s", err.msg);
	parse_acpi(&m, &s);
	ck_assert_uint_eq(s.rsdp, ACPI_START);
	ck_assert_uint_eq(s.lapics, cpus);
	ck_assert_uint_eq(s.ioapics, 1);
	ck_assert_uint_eq(s.ioapic_id, cpus); /* as in the MP table */
	ck_assert_uint_eq(s.nmis, 1);
	ck_assert_int_eq(s.iso_gsi[0], MPTABLE_TIMER_PIN);
	ck_assert_int_eq(s.iso_gsi[ACPI_SCI_IRQ], ACPI_SCI_IRQ);
	ck_assert_uint_eq(s.iso_flags[ACPI_SCI_IRQ], 0x000d); /* level, active high */
	for (int irq = 1; irq < 16; irq++)
		if (irq != ACPI_SCI_IRQ)
			ck_assert_int_eq(s.iso_gsi[irq], -1);

	/* The FADT points at hv's PM1a ports, the SCI and nothing hv lacks. */
	fadt = gp(&m, s.fadt, ACPI_FADT_SIZE);
	ck_assert_uint_eq(rd16(fadt + ACPI_FADT_SCI_INT), ACPI_SCI_IRQ);
	ck_assert_uint_eq(get_u32le(fadt + 48), 0); /* no SMI_CMD: always in ACPI mode */
	ck_assert_uint_eq(get_u32le(fadt + ACPI_FADT_PM1A_EVT), ACPI_PM_EVT_PORT);
	ck_assert_uint_eq(get_u32le(fadt + ACPI_FADT_PM1A_CNT), ACPI_PM_CNT_PORT);
	ck_assert_uint_eq(fadt[ACPI_FADT_PM1_EVT_LEN], ACPI_PM_EVT_LEN);
	ck_assert_uint_eq(fadt[ACPI_FADT_PM1_CNT_LEN], ACPI_PM_CNT_LEN);
	ck_assert_uint_eq(get_u64le(fadt + ACPI_FADT_X_PM1A_EVT + 4), ACPI_PM_EVT_PORT);
	ck_assert_uint_eq(get_u64le(fadt + ACPI_FADT_X_PM1A_CNT + 4), ACPI_PM_CNT_PORT);
	ck_assert_uint_eq(fadt[ACPI_FADT_X_PM1A_EVT], 1); /* system I/O */
	ck_assert_uint_eq(fadt[ACPI_FADT_X_PM1A_CNT + 1], ACPI_PM_CNT_LEN * 8);
	ck_assert_uint_eq(get_u32le(fadt + 76), 0);                   /* no PM timer */
	ck_assert_uint_eq(get_u32le(fadt + 80), 0);                   /* no GPE0 block */
	ck_assert_uint_eq(rd16(fadt + ACPI_FADT_BOOT_ARCH) & 0x2, 0); /* no i8042 keyboard */
	ck_assert_uint_eq(get_u32le(fadt + ACPI_FADT_FLAGS) & (1u << 20), 0); /* not HW-reduced */
	/* Nothing stale from before: the area is as if written on zeroed memory. */
	ck_assert_int_eq(memcmp(gp(&m, ACPI_START, ACPI_END - ACPI_START),
	                        gp(&clean, ACPI_START, ACPI_END - ACPI_START),
	                        ACPI_END - ACPI_START),
	                 0);
	guest_mem_free(&m);
	guest_mem_free(&clean);
}
END_TEST

START_TEST(test_acpi_rejects)
{
	struct circ_err err = { 0 };
	struct guest_mem m;

	alloc_mem(&m, 16 * MiB);
	ck_assert_int_eq(acpi_write(&m, 0, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(acpi_write(&m, MPTABLE_MAX_CPUS + 1, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(acpi_write(&m, 1, (const struct mptable_pci_irq[]){ { 0, 16 } }, 1, &err),
	                 -1);
	ck_assert_err_has(&err, "ACPI: PCI slot 0");
	ck_assert_int_eq(acpi_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 2 } }, 1, &err),
	                 -1);
	ck_assert_err_has(&err, "GSI 2");
	ck_assert_int_eq(acpi_write(&m, 1, NULL, 2, &err), -1);
	guest_mem_free(&m);
}
END_TEST

static void dump_table(const struct guest_mem *m, uint64_t gpa, size_t len, const char *name)
{
	char path[PATH_MAX];

	test_path(path, name);
	write_file(path, gp(m, gpa, len), len);
}

/* acpiexec's output for cmds run over the tables in m; false when acpiexec is missing. */
static bool acpiexec(const struct guest_mem *m, const struct acpi_seen *s, const char *cmds,
                     struct buf *out)
{
	char cmd[PATH_MAX * 2];
	char chunk[4096];
	FILE *p;
	size_t n;

	if (access("/usr/bin/acpiexec", X_OK) != 0)
		return false;
	dump_table(m, s->fadt, ACPI_FADT_SIZE, "facp.dat");
	dump_table(m, s->dsdt, s->dsdt_len, "dsdt.dat");
	dump_table(m, s->madt, get_u32le(gp(m, s->madt + 4, 4)), "apic.dat");
	dump_table(m, s->facs, ACPI_FACS_SIZE, "facs.dat");
	snprintf(cmd, sizeof(cmd),
	         "cd '%s' && /usr/bin/acpiexec -b '%s' facp.dat dsdt.dat apic.dat facs.dat 2>&1",
	         test_dir(), cmds);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		ck_assert_int_eq(buf_append(out, chunk, n), 0);
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_int_eq(buf_append(out, "", 1), 0);
	return true;
}

static void expect_output(const struct buf *out, const char *needle)
{
	ck_assert_msg(strstr((const char *)out->data, needle), "acpiexec did not print '%s':\n%s",
	              needle, (const char *)out->data);
}

/*
 * ACPICA, the code Linux runs, loads the tables, finds the routes in _PRT
 * and the root bridge's windows in _CRS, and goes through the whole S5
 * sequence (\_S5, PM1 status and control) without an error.
 */
START_TEST(test_acpi_acpiexec)
{
	const struct mptable_pci_irq irqs[] = { { 1, 16 }, { 7, 21 } };
	struct circ_err err = { 0 };
	struct buf out = { 0 };
	struct acpi_seen s;
	struct guest_mem m;
	const char *text;

	alloc_mem(&m, 16 * MiB);
	ck_assert_msg(acpi_write(&m, 4, irqs, 2, &err) == 0, "%s", err.msg);
	parse_acpi(&m, &s);
	if (!acpiexec(&m, &s,
	              "evaluate \\_SB.PCI0._PRT; evaluate \\_SB.PCI0._CRS; "
	              "evaluate \\_SB.PCI0._HID; sleep 5",
	              &out)) {
		guest_mem_free(&m);
		/* scripts/deps.sh installs acpica-tools; tests/run.sh counts this as skipped. */
		fprintf(stderr,
		        "SKIP: acpiexec over hv's tables: /usr/bin/acpiexec is not installed\n");
		return;
	}
	text = (const char *)out.data;
	expect_output(&out, "FACP 0x");
	expect_output(&out, "(v06 CIRC   CIRC-HV ");
	expect_output(&out, "_PRT returned object");
	expect_output(&out, "[Integer] = 000000000001FFFF");
	expect_output(&out, "[Integer] = 0000000000000010");
	expect_output(&out, "[Integer] = 000000000007FFFF");
	expect_output(&out, "[Integer] = 0000000000000015");
	expect_output(&out, "_CRS returned object");
	expect_output(&out, "[Integer] = 00000000030AD041");
	expect_output(&out, "Sleep-A: 05, Sleep-B: 05");
	expect_output(&out, "Entering sleep state [S5]");
	expect_output(&out, "Return from sleep (S5)");
	ck_assert_msg(!strstr(text, "ACPI Error") && !strstr(text, "ACPI Warning") &&
	                  !strstr(text, "ACPI Exception"),
	              "acpiexec complained:\n%s", text);
	buf_free(&out);
	guest_mem_free(&m);
}
END_TEST

/* ---- the devices that end the VM ---- */

struct events {
	unsigned off, reset;
};

static void count_event(void *ctx, enum power_event ev)
{
	struct events *e = ctx;

	if (ev == POWER_OFF)
		e->off++;
	else
		e->reset++;
}

static uint32_t pm_read(struct acpi_pm *pm, unsigned port, unsigned len)
{
	uint8_t d[4] = { 0 };

	acpi_pm_io(pm, port - ACPI_PM_EVT_PORT, d, len, false);
	return get_u32le(d);
}

static void pm_write(struct acpi_pm *pm, unsigned port, unsigned len, uint32_t v)
{
	uint8_t d[4];

	put_u32le(d, v);
	acpi_pm_io(pm, port - ACPI_PM_EVT_PORT, d, len, true);
}

START_TEST(test_acpi_pm_registers)
{
	struct events e = { 0, 0 };
	struct acpi_pm pm;

	acpi_pm_init(&pm, (struct power_sink){ count_event, &e });
	/* In ACPI mode from reset. */
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_CNT_PORT, 2), ACPI_PM_SCI_EN);
	/* Enable holds what is written; status bits clear when 1 is written. */
	pm_write(&pm, ACPI_PM_EVT_PORT + 2, 2, 0x0121);
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_EVT_PORT + 2, 2), 0x0121);
	pm.sts = 0x8001;
	pm_write(&pm, ACPI_PM_EVT_PORT, 2, 0x8000);
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_EVT_PORT, 2), 0x0001);
	/* One 32-bit read covers status and enable, as the block's layout says. */
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_EVT_PORT, 4), 0x01210001);
	/* SLP_TYP without SLP_EN (ACPICA's first write) is kept; SLP_EN never reads back. */
	pm_write(&pm, ACPI_PM_CNT_PORT, 2, ACPI_PM_S5_TYP << 10);
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_CNT_PORT, 2), ACPI_PM_S5_TYP << 10 | ACPI_PM_SCI_EN);
	ck_assert_uint_eq(e.off, 0);
	/* Past the block: all ones, and writes there do nothing. */
	acpi_pm_io(&pm, 6, (uint8_t[4]){ 0 }, 2, true);
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_CNT_PORT, 4) >> 16, 0xffff);
	ck_assert_uint_eq(e.off + e.reset, 0);
	acpi_pm_destroy(&pm);
}
END_TEST

START_TEST(test_acpi_pm_sleep)
{
	struct events e = { 0, 0 };
	struct acpi_pm pm;

	acpi_pm_init(&pm, (struct power_sink){ count_event, &e });
	/* S0 (or any state the DSDT does not offer) with SLP_EN does nothing. */
	pm_write(&pm, ACPI_PM_CNT_PORT, 2, ACPI_PM_SLP_EN | ACPI_PM_SCI_EN);
	pm_write(&pm, ACPI_PM_CNT_PORT, 2, 3 << 10 | ACPI_PM_SLP_EN);
	ck_assert_uint_eq(e.off, 0);
	ck_assert_uint_eq(pm_read(&pm, ACPI_PM_CNT_PORT, 2) & ACPI_PM_SLP_EN, 0);
	/* S5 written a byte at a time: off once the byte with SLP_EN lands. */
	pm_write(&pm, ACPI_PM_CNT_PORT, 1, 0);
	pm_write(&pm, ACPI_PM_CNT_PORT + 1, 1, (ACPI_PM_S5_TYP << 10 | ACPI_PM_SLP_EN) >> 8);
	ck_assert_uint_eq(e.off, 1);
	/* And as one 16-bit write, the way ACPICA does it. */
	pm_write(&pm, ACPI_PM_CNT_PORT, 2, ACPI_PM_S5_TYP << 10 | ACPI_PM_SLP_EN | ACPI_PM_SCI_EN);
	ck_assert_uint_eq(e.off, 2);
	ck_assert_uint_eq(e.reset, 0);
	acpi_pm_destroy(&pm);
}
END_TEST

START_TEST(test_i8042_reset)
{
	struct events e = { 0, 0 };
	struct i8042 k;
	uint8_t d;

	i8042_init(&k, (struct power_sink){ count_event, &e });
	/* The self test Linux's reboot path may run first, then the reset pulse. */
	d = 0xaa;
	i8042_io(&k, I8042_COMMAND_PORT - I8042_DATA_PORT, &d, 1, true);
	i8042_io(&k, I8042_COMMAND_PORT - I8042_DATA_PORT, &d, 1, false);
	ck_assert_uint_eq(d & 1, 1);
	i8042_io(&k, 0, &d, 1, false);
	ck_assert_uint_eq(d, 0x55);
	ck_assert_uint_eq(e.reset, 0);
	d = 0xfe;
	i8042_io(&k, I8042_COMMAND_PORT - I8042_DATA_PORT, &d, 1, true);
	ck_assert_uint_eq(e.reset, 1);
	ck_assert_uint_eq(e.off, 0);
}
END_TEST

Suite *acpi_suite(void)
{
	Suite *s = suite_create("acpi");
	TCase *aml = tcase_create("aml");
	TCase *tables = tcase_create("tables");
	TCase *dev = tcase_create("devices");

	tcase_add_loop_test(aml, test_aml_pkglength, 0,
	                    (int)(sizeof(buffer_sizes) / sizeof(buffer_sizes[0])));
	tcase_add_test(aml, test_aml_nesting);
	tcase_add_test(aml, test_aml_names);
	tcase_add_test(aml, test_aml_integers);
	tcase_add_test(aml, test_aml_errors_stick);
	suite_add_tcase(s, aml);

	tcase_add_scratch(tables);
	/* acpiexec stalls 10 s after S5, as ACPICA does when the machine is still running. */
	tcase_set_timeout(tables, 60);
	tcase_add_loop_test(tables, test_acpi_tables, 0,
	                    (int)(sizeof(acpi_cpu_counts) / sizeof(acpi_cpu_counts[0])));
	tcase_add_test(tables, test_acpi_rejects);
	tcase_add_test(tables, test_acpi_acpiexec);
	suite_add_tcase(s, tables);

	tcase_add_test(dev, test_acpi_pm_registers);
	tcase_add_test(dev, test_acpi_pm_sleep);
	tcase_add_test(dev, test_i8042_reset);
	suite_add_tcase(s, dev);
	return s;
}
