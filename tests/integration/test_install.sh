#!/usr/bin/env bash
# circ installed as a user meets it: `make install` puts the binary, a man
# page for circ and for every command `circ --help` lists (made from each
# one's --help, so they say the same), and bash completion under PREFIX;
# `make uninstall` takes them away. The completion offers commands,
# options, local disks and circ's mountpoints.
. "$(dirname "$0")/lib.sh"

ROOT=${CIRC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${CIRC_BUILD:-$(dirname "$CIRC")}

# The commands `circ --help` lists.
commands() {
	"$CIRC" --help | awk '/^Commands:|^Cold migration/ { l = 1; next }
		/^Options for every command:/ { l = 0 } l && /^  [a-z]+/ { print $1 }' | sort -u
}

test_install_and_uninstall() {
	command -v man >/dev/null || skip "man is not installed"
	make -s -C "$ROOT" BUILD="$BUILD" install DESTDIR="$T_DIR/inst" PREFIX=/usr >make.out 2>&1 ||
		die "make install failed: $(tail -n 3 make.out)"
	inst=$T_DIR/inst/usr
	[ -x "$inst/bin/circ" ] || die "no bin/circ"
	cmp "$inst/bin/circ" "$CIRC" || die "bin/circ is not the circ built"
	[ -f "$inst/share/bash-completion/completions/circ" ] || die "no bash completion"
	for u in circ-serve.service circ-kiosk@.service; do
		grep -q "^ExecStart=/usr/bin/circ " "$inst/lib/systemd/system/$u" ||
			die "$u does not run /usr/bin/circ: $(grep ExecStart "$inst/lib/systemd/system/$u")"
	done
	grep -q "^u circ " "$inst/lib/sysusers.d/circ.conf" || die "no sysusers entry for circ"
	for d in README.md hv.md deploy.md; do
		[ -f "$inst/share/doc/circ/$d" ] || die "no share/doc/circ/$d"
	done
	n=0
	for cmd in "" $(commands); do
		page=$inst/share/man/man1/circ${cmd:+-$cmd}.1.gz
		[ -f "$page" ] || die "no man page for 'circ $cmd'"
		[ "$(stat -c %a "$page")" = 644 ] || die "$page is mode $(stat -c %a "$page")"
		# groff's warnings: a page that does not render cleanly.
		warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		[ -z "$warn" ] || die "man warns about $page: $warn"
		# The page is the help: its synopsis is the help's usage line.
		usage=$("$CIRC" $cmd --help | sed -n '1s/^Usage: //p')
		MANWIDTH=200 man -l "$page" 2>/dev/null | tr -s ' ' | grep -qF "$(echo "$usage" | tr -s ' ')" ||
			die "the page of 'circ $cmd' does not say '$usage'"
		n=$((n + 1))
	done
	echo "note: $n man pages"
	make -s -C "$ROOT" BUILD="$BUILD" uninstall DESTDIR="$T_DIR/inst" PREFIX=/usr >make.out 2>&1 ||
		die "make uninstall failed: $(tail -n 3 make.out)"
	left=$(find "$T_DIR/inst" -type f)
	[ -z "$left" ] || die "make uninstall left: $left"
}

# complete WORDS...: what the completion offers for the last word.
complete_words() {
	# shellcheck disable=SC1091 # the script under test
	(
		PATH=$(dirname "$CIRC"):$PATH
		. "$ROOT/completion/circ.bash"
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_circ
		echo "${COMPREPLY[*]}"
	)
}

test_bash_completion() {
	command -v bash >/dev/null || skip "bash is not installed"
	[ "$(complete_words circ pu)" = "publish pull push" ] || die "circ pu: $(complete_words circ pu)"
	[ "$(complete_words circ push --kee)" = "--keep-lease" ] || die "push --kee: $(complete_words circ push --kee)"
	[ "$(complete_words circ run --vmm "")" = "auto hv qemu" ] || die "--vmm: $(complete_words circ run --vmm "")"
	complete_words circ run --d | grep -qw -- "--display" || die "run --d: $(complete_words circ run --d)"
	"$CIRC" --state st create home --size 1M >/dev/null || die "create"
	"$CIRC" --state st create hobby --size 1M >/dev/null || die "create"
	[ "$(complete_words circ --state st update h)" = "hobby home" ] ||
		die "update h: $(complete_words circ --state st update h)"
	[ "$(complete_words circ --state st mount hom)" = "home" ] || die "mount hom"
	# Every command `circ --help` lists is offered.
	[ "$(complete_words circ "" | tr ' ' '\n' | sort)" = "$(commands)" ] ||
		die "the commands offered are not circ's: $(complete_words circ "")"
	need_fuse
	mount_disk st home "mnt point"
	complete_words circ umount "$T_DIR/mnt" | grep -qF "$T_DIR/mnt point" ||
		die "umount offers no mountpoint: $(complete_words circ umount "$T_DIR/mnt")"
}

# The server's unit as installed, with circ and its man pages where this tree
# has them: systemd-analyze verify says nothing, and security rates the
# sandbox OK or better. (No systemd runs here to start it.)
test_serve_unit() {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	[ -f "$BUILD/man/circ-serve.1" ] || die "no man pages in $BUILD/man (make man)"
	mkdir -p man/man1
	cp "$BUILD"/man/*.1 man/man1/
	sed "s|/usr/local/bin/circ|$CIRC|" "$ROOT/dist/circ-serve.service" >circ-serve.service
	out=$(MANPATH=$T_DIR/man systemd-analyze verify ./circ-serve.service 2>&1) ||
		die "verify failed: $out"
	[ -z "$out" ] || die "systemd-analyze verify warns: $out"
	level=$(systemd-analyze security --offline=true ./circ-serve.service 2>&1 |
		sed -n 's/.*Overall exposure level for circ-serve.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
	[ -n "$level" ] || die "systemd-analyze security rated nothing"
	echo "note: circ-serve.service's exposure: $level (systemd-analyze security)"
	case ${level#* } in
	SAFE | OK) ;;
	*) die "the sandbox is rated $level, not OK" ;;
	esac
}

# make deb: dpkg-buildpackage and lintian (no error: make deb fails on one);
# dpkg -i into a root of its own;
# the dependencies dpkg-shlibdeps found, what the package holds, and the
# version its circ prints.
test_deb() {
	command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage is not installed"
	command -v lintian >/dev/null || skip "lintian is not installed"
	make -s -C "$ROOT" BUILD="$BUILD" deb >make.out 2>&1 || die "make deb failed: $(tail -n 5 make.out)"
	version=$(sed -n '1s/^circ (\([^)]*\)).*/\1/p' "$ROOT/debian/changelog")
	deb=$BUILD/circ_${version}_amd64.deb
	[ -f "$deb" ] || die "no $deb"
	echo "note: $(basename "$deb"), $(stat -c %s "$deb") bytes; lintian: $(grep -c '^[WE]:' make.out) warnings or errors"
	depends=$(dpkg-deb -f "$deb" Depends)
	for lib in libfuse3-3 libcurl4 libzstd1 libssl3 libmicrohttpd12 libslirp0 libvncserver1 fuse3; do
		echo "$depends" | grep -q "$lib" || die "Depends lacks $lib: $depends"
	done
	# dpkg -i into a root of its own (its own package database; the maintainer
	# scripts see DPKG_ROOT and leave this machine alone): installed, configured.
	mkdir -p root/var/lib/dpkg/info root/var/lib/dpkg/updates root/etc
	: >root/var/lib/dpkg/status
	dpkg --root="$T_DIR/root" --force-script-chrootless --force-depends -i "$deb" >dpkg.out 2>&1 ||
		die "dpkg -i failed: $(tail -n 3 dpkg.out)"
	dpkg --root="$T_DIR/root" -l circ | grep -q "^ii  circ " ||
		die "dpkg does not list circ installed: $(dpkg --root="$T_DIR/root" -l circ | tail -n 1)"
	for f in usr/bin/circ usr/share/man/man1/circ-push.1.gz usr/share/bash-completion/completions/circ \
		lib/systemd/system/circ-serve.service lib/systemd/system/circ-kiosk@.service \
		usr/lib/sysusers.d/circ.conf usr/share/doc/circ/README.md.gz usr/share/doc/circ/hv.md.gz \
		usr/share/doc/circ/copyright; do
		[ -e "root/$f" ] || die "the package lacks /$f"
	done
	[ "$(root/usr/bin/circ --version)" = "circ $version" ] ||
		die "the packaged circ says '$(root/usr/bin/circ --version)', not 'circ $version'"
	MANWIDTH=80 man -l root/usr/share/man/man1/circ-push.1.gz 2>/dev/null | grep -q "circ push DISK" ||
		die "the packaged circ-push(1) does not read"
}

t_case "make install: binary, man pages for every command, completion; make uninstall" \
	test_install_and_uninstall
t_case "bash completion: commands, options, disks, mountpoints" test_bash_completion
t_case "circ-serve.service: systemd-analyze verify, and its sandbox rated" test_serve_unit
t_case "make deb: a package lintian passes, with its dependencies, pages, units" test_deb
