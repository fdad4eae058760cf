/* SPDX-License-Identifier: MIT */
/* One suite per test file; main.c runs them all. */
#ifndef CIRC_SUITES_H
#define CIRC_SUITES_H

#include <check.h>

Suite *err_suite(void);
Suite *buf_suite(void);
Suite *parallel_suite(void);
Suite *json_suite(void);
Suite *block_suite(void);
Suite *repo_suite(void);
Suite *key_suite(void);
Suite *manifest_suite(void);
Suite *pointer_suite(void);
Suite *image_suite(void);
Suite *cli_suite(void);
Suite *cache_suite(void);
Suite *cache_shared_suite(void);
Suite *cache_migrate_suite(void);
Suite *readahead_suite(void);
Suite *store_suite(void);
Suite *overlay_suite(void);
Suite *overlay_checkpoint_suite(void);
Suite *overlay_crash_suite(void);
Suite *crash_suite(void);
Suite *push_crash_suite(void);
Suite *push_suite(void);
Suite *state_suite(void);
Suite *disk_suite(void);
Suite *virtio_suite(void);
Suite *virtio_queue_suite(void);
Suite *virtio_pci_suite(void);
Suite *virtio_net_suite(void);
Suite *net_backend_suite(void);
Suite *virtio_input_suite(void);
Suite *boot_mptable_suite(void);
Suite *boot_elf_suite(void);
Suite *boot_suite(void);
Suite *acpi_suite(void);
Suite *objects_suite(void);
Suite *ukey_suite(void);
Suite *ulayer_suite(void);
Suite *format2_suite(void);
Suite *format2_image_suite(void);
Suite *catalog_suite(void);

#endif
