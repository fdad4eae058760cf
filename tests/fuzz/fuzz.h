/* SPDX-License-Identifier: MIT */
/*
 * The libFuzzer entry point every fuzz_*.c defines. Built with clang's
 * -fsanitize=fuzzer it is driven by libFuzzer; built with replay.c it runs
 * once per corpus file, so `make check` replays the seeds with any compiler.
 */
#ifndef CIRC_FUZZ_H
#define CIRC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
