# circ — see README.md. `make` builds build/circ; `make check` installs what
# the tests need (apt-get, as root), builds and runs every test.

BUILD	?= build
CC	?= cc
PKGS	:= fuse3 libcurl libzstd libxxhash libcrypto libmicrohttpd libcrypt slirp libvncserver
PREFIX	?= /usr/local

# Sanitizer builds live in their own tree so they never mix with normal objects.
ifeq ($(SANITIZE),1)
BUILD	:= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

WARN	:= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wformat=2 -Wvla -Wno-format-nonliteral
# CFLAGS and LDFLAGS are the user's (make CFLAGS=-O0); the project's own go beside them.
CFLAGS	?= -O2 -g
# `circ --version`: git describe in a checkout, the release number outside one.
# The release number is debian/changelog's: one place for the package and the binary.
CIRC_VERSION := $(shell test -e .git && git describe --always --dirty 2>/dev/null || \
	awk -F'[()]' 'NR == 1 { print $$2 }' debian/changelog)
ALL_CFLAGS = $(CPPFLAGS) $(CFLAGS) -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -pthread \
	   -MMD -MP $(SANFLAGS) -DCIRC_VERSION='"$(CIRC_VERSION)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_LDFLAGS = $(LDFLAGS) -pthread $(SANFLAGS)

# Modules in the order data flows through them (docs/architecture.md).
LIB_SRC	:= $(wildcard util/*.c blockfs/*.c vdisk/*.c server/*.c hv/*.c) \
	   $(filter-out client/main.c,$(wildcard client/*.c))
LIB_OBJ	:= $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/client/main.o
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps check check-run check-sanitize stress fuzz fuzz-run bench demo demo-shell images \
	install uninstall man deb clean format

all: $(BUILD)/circ $(BUILD)/guest/test-guest.elf

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/libcirc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# main.o, which prints the version, is rebuilt when it changes.
$(MAIN_OBJ): $(BUILD)/version
$(BUILD)/version: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CIRC_VERSION)' | cmp -s - $@ || echo '$(CIRC_VERSION)' >$@
FORCE:

$(BUILD)/circ: $(MAIN_OBJ) $(BUILD)/libcirc.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libcirc.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs check 2>/dev/null)

# Fuzz targets' corpus driver: runs each target over its seed corpus in `make check`.
$(BUILD)/fuzz-%-replay: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(BUILD)/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/fuzz-%-replay)

# The freestanding test guest that hv boots in tests (no sanitizers: it has no libc).
GUEST_CFLAGS := -O2 -g -ffreestanding -fno-pic -fno-pie -fno-stack-protector -mno-red-zone \
	-mgeneral-regs-only -fno-builtin -nostdlib -static -no-pie -Wall -Wextra -Werror \
	-Wl,-T,tests/guest/guest.ld -Wl,--build-id=none -Wl,-z,noexecstack
GUEST_SRC := tests/guest/entry.S tests/guest/guest.c tests/guest/lib.c tests/guest/net.c tests/guest/display.c
$(BUILD)/guest/test-guest.elf: $(GUEST_SRC) tests/guest/guest.h tests/guest/guest.ld
	@mkdir -p $(dir $@)
	gcc $(GUEST_CFLAGS) -o $@ $(GUEST_SRC)

# The tests' tools: a slowloris client, disk traffic for the kill -9 cycles, where a
# cache's blocks lie.
$(BUILD)/slowloris: tests/tools/slowloris.c
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<
$(BUILD)/disktraffic: tests/tools/disktraffic.c
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<
# The display tests' VNC client.
$(BUILD)/vnctool: tests/tools/vnctool.c
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags libvncclient libpng 2>/dev/null) $(ALL_LDFLAGS) \
		-o $@ $< $(shell pkg-config --libs libvncclient libpng 2>/dev/null)
$(BUILD)/cachetool: tests/tools/cachetool.c tests/unit/packfile.c $(BUILD)/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# bench/hv.sh's helper: the virtio-blk device model driven without KVM, start-up timing.
$(BUILD)/virtio-bench: bench/virtio_bench.c $(BUILD)/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm
# bench/devices.sh's helper: the virtio-net model, the VNC server and KVM's dirty log.
$(BUILD)/io-bench: bench/io_bench.c $(BUILD)/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm
# bench/disk.sh's helper: reads through the vdisk API (as hv does) beside pread.
$(BUILD)/vdisk-bench: bench/vdisk_bench.c $(BUILD)/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

deps:
	@scripts/deps.sh build

check: deps
	@$(MAKE) --no-print-directory check-run

check-run: $(BUILD)/circ $(BUILD)/unit-tests $(FUZZ_REPLAY) $(BUILD)/guest/test-guest.elf \
	$(BUILD)/slowloris $(BUILD)/disktraffic $(BUILD)/cachetool $(BUILD)/vnctool $(BUILD)/man/circ.1
	@tests/run.sh $(BUILD)

check-sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 CFLAGS="-O1 -g" check-run

# libFuzzer targets (clang); `make fuzz-run` gives each FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh fuzz
	@mkdir -p build-fuzz
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
		$(FUZZ_NAMES:%=build-fuzz/fuzz-%)

build-fuzz/fuzz-%: tests/fuzz/fuzz_%.c build-fuzz/libcirc.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)

fuzz-run: fuzz
	@for n in $(FUZZ_NAMES); do \
		mkdir -p build-fuzz/corpus-$$n; \
		build-fuzz/fuzz-$$n -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$n \
			tests/fuzz/corpus/$$n || exit 1; \
	done

# Long runs of what make check runs short, each bounded in time and stopping
# by itself: simulated power cuts (overlay, cache, publisher, update switch,
# uploads), kill -9 cycles of processes sharing a cache and of a mount under
# traffic, and every fuzz target.
STRESS_CRASH_IMAGES ?= 100000
STRESS_KILL_CYCLES  ?= 1000
STRESS_FUZZ_RUNS    ?= 10000000
STRESS_FUZZ_SECONDS ?= 1800
STRESS_JOBS         ?= $(shell nproc)
stress: deps $(BUILD)/circ $(BUILD)/unit-tests $(BUILD)/disktraffic fuzz
	@for suite in overlay_crash crash push_crash; do \
		echo "== $$suite power cuts: $(STRESS_CRASH_IMAGES) images each"; \
		CIRC_CRASH_IMAGES=$(STRESS_CRASH_IMAGES) CK_RUN_SUITE=$$suite \
		CK_TIMEOUT_MULTIPLIER=$$(( $(STRESS_CRASH_IMAGES) / 1000 + 1 )) \
		$(BUILD)/unit-tests || exit 1; \
	done
	@echo "== kill -9 cycles of processes sharing a cache: $(STRESS_KILL_CYCLES)"
	@CIRC_CACHE_KILL_CYCLES=$(STRESS_KILL_CYCLES) CK_RUN_SUITE=cache_shared \
		CK_TIMEOUT_MULTIPLIER=$$(( $(STRESS_KILL_CYCLES) / 40 + 1 )) $(BUILD)/unit-tests || exit 1
	@echo "== kill -9 cycles of a mount under traffic: $(STRESS_KILL_CYCLES)"
	@CIRC=$(abspath $(BUILD))/circ CIRC_BUILD=$(abspath $(BUILD)) CIRC_ROOT=$(CURDIR) \
		CIRC_KILL_CYCLES=$(STRESS_KILL_CYCLES) CIRC_TEST_ONLY=test_kill9_cycles \
		bash tests/integration/test_disk.sh | tee $(BUILD)/stress-kill9.log
	@grep -q '^PASS' $(BUILD)/stress-kill9.log
	@echo "== fuzz targets, $(STRESS_JOBS) at a time: $(STRESS_FUZZ_RUNS) runs or $(STRESS_FUZZ_SECONDS) s each"
	@printf '%s\n' $(FUZZ_NAMES) | xargs -P $(STRESS_JOBS) -I{} sh -c '\
		mkdir -p build-fuzz/corpus-{}; \
		build-fuzz/fuzz-{} -runs=$(STRESS_FUZZ_RUNS) -max_total_time=$(STRESS_FUZZ_SECONDS) \
			build-fuzz/corpus-{} tests/fuzz/corpus/{} >build-fuzz/stress-{}.log 2>&1 || \
			{ echo "fuzz-{} failed:"; tail -n 20 build-fuzz/stress-{}.log; exit 255; }; \
		echo "fuzz-{}: $$(grep -E "^Done [0-9]+ runs" build-fuzz/stress-{}.log)"'

bench: deps
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/circ $(BUILD)/guest/test-guest.elf $(BUILD)/virtio-bench \
		$(BUILD)/vdisk-bench $(BUILD)/io-bench $(BUILD)/vnctool
	@bench/run.sh $(BUILD)

# The boot kit (Debian's kernel, an initramfs) and the busybox test OS, cached in build/images.
images: deps
	@images/bootkit.sh build/images/kit
	@images/busybox.sh build/images/busybox.img

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/circ
	@scripts/demo.sh $(BUILD)

demo-shell: deps
	@$(MAKE) --no-print-directory $(BUILD)/circ
	@scripts/demo.sh $(BUILD) --shell

# Man pages from circ's own --help (scripts/man.sh, help2man): they cannot drift from it.
man: $(BUILD)/man/circ.1
$(BUILD)/man/circ.1: $(BUILD)/circ scripts/man.sh
	@rm -rf $(BUILD)/man
	@scripts/man.sh $(BUILD)/circ $(BUILD)/man

# What `make install` puts under $(DESTDIR)$(PREFIX), and `make uninstall` takes away.
MANDIR	?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR	?= $(PREFIX)/share/doc/circ
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
UNITS	:= circ-serve.service circ-kiosk@.service
install: $(BUILD)/circ $(BUILD)/man/circ.1
	install -D -m 0755 $(BUILD)/circ $(DESTDIR)$(PREFIX)/bin/circ
	install -d $(DESTDIR)$(MANDIR)/man1
	for f in $(BUILD)/man/*.1; do \
		gzip -9n <$$f >$(DESTDIR)$(MANDIR)/man1/$$(basename $$f).gz || exit 1; \
		chmod 0644 $(DESTDIR)$(MANDIR)/man1/$$(basename $$f).gz; \
	done
	install -D -m 0644 completion/circ.bash $(DESTDIR)$(BASHCOMPDIR)/circ
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed 's|/usr/local/bin/circ|$(PREFIX)/bin/circ|g' dist/$$u >$(DESTDIR)$(UNITDIR)/$$u || exit 1; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -D -m 0644 dist/circ.sysusers $(DESTDIR)$(SYSUSERSDIR)/circ.conf
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

# The Debian package, built by dpkg-buildpackage (debian/) from a copy of the
# tracked files, and checked by lintian: $(BUILD)/circ_VERSION_amd64.deb.
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
deb:
	@rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/circ-$(DEB_VERSION)
	@git ls-files -z --cached --others --exclude-standard | \
		xargs -0 cp --parents -t $(BUILD)/deb/circ-$(DEB_VERSION)
	cd $(BUILD)/deb/circ-$(DEB_VERSION) && dpkg-buildpackage -us -uc -b >../build.log 2>&1 || \
		{ tail -n 20 ../build.log; exit 1; }
	lintian --fail-on error --suppress-tags package-supports-alternative-init-but-no-init.d-script \
		$(BUILD)/deb/circ_$(DEB_VERSION)_amd64.deb
	cp $(BUILD)/deb/circ_$(DEB_VERSION)_amd64.deb $(BUILD)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/circ $(DESTDIR)$(MANDIR)/man1/circ.1.gz \
		$(DESTDIR)$(MANDIR)/man1/circ-*.1.gz $(DESTDIR)$(BASHCOMPDIR)/circ \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(SYSUSERSDIR)/circ.conf \
		$(DESTDIR)$(DOCDIR)/README.md $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(wildcard docs/*.md)))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJ:.o=.d)
