#!/usr/bin/env bash
# make install / make uninstall into a temporary DESTDIR (never the real
# system), then use the staged tree as a user would:
# - the installed files are exactly the expected list (derived from the
#   version macros, the header's API, docs/ and examples/), the library
#   links and soname are right, the installed library is the build's;
# - the installed header compiles on its own; pkg-config (with
#   PKG_CONFIG_SYSROOT_DIR, and with --define-prefix) gives its flags;
# - the installed `epollcr run` finds the installed library with no path
#   given and no LD_LIBRARY_PATH, also through a symlink to the binary,
#   and says so clearly when there is none;
# - examples/restore-embed.c, built from the installed docs with
#   pkg-config, restores an image of a real program (examples/epoll-server
#   run by the installed epollcr), and the restored process is checked
#   against the image through its own /proc/PID/fdinfo and `epollcr verify`;
# - man finds the installed pages (epollcr_restore(3) included);
# - `make uninstall` leaves none of our files; the same for a Debian-style
#   install (PREFIX=/usr, LIBDIR=/usr/lib/MULTIARCH) and a lib64 one.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hdr=$TOP/include/epollcr.h
version_part() { sed -n "s/^#define EPOLLCR_VERSION_$1 \([0-9]*\)$/\1/p" "$hdr"; }
major=$(version_part MAJOR) minor=$(version_part MINOR) patch=$(version_part PATCH)
version=$major.$minor.$patch
api=$(sed -n 's/^EPOLLCR_EXPORT .*[ *]\([a-z_0-9]*\)(.*/\1/p' "$hdr")
cc=${CC:-gcc}
# Sanitized builds install sanitized binaries: programs built against them
# need the same runtime, first (run-tests.sh puts it in PRELOAD).
san_flags=() san_runtime=
if [ -n "${SAN:-}" ]; then
	san_flags=(-fsanitize="$SAN")
	san_runtime=${PRELOAD%"$LIB"}
	san_runtime=${san_runtime%:}
	echo "note: SAN=$SAN: the example is built with -fsanitize=$SAN (pkg-config's flags do not carry it), programs run with LD_PRELOAD=${san_runtime:-(nothing)} first"
fi

# The tests run inside `make check`: start a make of our own.
unset MAKEFLAGS MFLAGS MAKELEVEL
# make_in TARGET VAR=VALUE...: make TARGET for this build directory.
make_in() {
	make -C "$TOP" --no-print-directory "$@" BUILD="$BUILD" SAN="${SAN:-}" \
		CC="$cc" >"$WORK/make.log" 2>&1 || { cat "$WORK/make.log"; return 1; }
}

real_usr_local=$(ls -d /usr/local/lib/libepollcr* /usr/local/bin/epollcr 2>/dev/null)
D=$WORK/stage
P=/usr/local
make_in install DESTDIR="$D" || { fail "make install DESTDIR=$D failed"; finish; }
pass "make install DESTDIR=$D (default PREFIX)"

# -- the file list ---------------------------------------------------------
expected=$( (
	echo "$P/bin/epollcr"
	echo "$P/include/epollcr.h"
	echo "$P/lib/libepollcr.so"
	echo "$P/lib/libepollcr.so.$major"
	echo "$P/lib/libepollcr.so.$major.$minor"
	echo "$P/lib/pkgconfig/epollcr.pc"
	echo "$P/share/bash-completion/completions/epollcr"
	echo "$P/share/doc/epollcr/README.md"
	for f in "$TOP"/docs/*.md; do echo "$P/share/doc/epollcr/docs/${f##*/}"; done
	for f in "$TOP"/examples/*.c; do echo "$P/share/doc/epollcr/examples/${f##*/}"; done
	echo "$P/share/man/man1/epollcr.1"
	echo "$P/share/man/man3/libepollcr.3"
	for f in $api; do echo "$P/share/man/man3/$f.3"; done
	echo "$P/share/man/man5/epollcr-image.5"
) | sort)
installed=$(cd "$D" && find . \( -type f -o -type l \) | sed 's/^\.//' | sort)
if [ "$installed" = "$expected" ]; then
	pass "installed exactly the $(wc -l <<<"$expected") expected files"
else
	fail "installed files differ from the expected list:"
	diff <(echo "$expected") <(echo "$installed") | sed 's/^/    /'
fi

L=$D$P/lib
[ -f "$L/libepollcr.so.$major.$minor" ] && [ ! -L "$L/libepollcr.so.$major.$minor" ] &&
	[ -x "$L/libepollcr.so.$major.$minor" ] ||
	fail "$L/libepollcr.so.$major.$minor is not an executable regular file"
cmp -s "$L/libepollcr.so.$major.$minor" "$LIB" && pass "the installed library is $LIB" ||
	fail "the installed library differs from $LIB"
[ "$(readlink "$L/libepollcr.so.$major")" = "libepollcr.so.$major.$minor" ] &&
	[ "$(readlink "$L/libepollcr.so")" = "libepollcr.so.$major" ] &&
	pass "links: libepollcr.so -> libepollcr.so.$major -> libepollcr.so.$major.$minor" ||
	fail "links: libepollcr.so -> $(readlink "$L/libepollcr.so"), libepollcr.so.$major -> $(readlink "$L/libepollcr.so.$major")"
soname=$(readelf -d "$L/libepollcr.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libepollcr.so.$major" ] && pass "soname $soname" ||
	fail "the installed library's soname is '$soname'"
cmp -s "$D$P/include/epollcr.h" "$hdr" || fail "the installed header differs from include/epollcr.h"
modes=$(cd "$D" && stat -c '%a %n' ".$P/bin/epollcr" ".$P/include/epollcr.h" \
	".$P/lib/pkgconfig/epollcr.pc" ".$P/share/man/man1/epollcr.1" | xargs)
[ "$modes" = "755 .$P/bin/epollcr 644 .$P/include/epollcr.h 644 .$P/lib/pkgconfig/epollcr.pc 644 .$P/share/man/man1/epollcr.1" ] &&
	pass "modes: $modes" || fail "modes: $modes"
format=$(sed -n 's/^#define IMAGE_VERSION \([0-9]*\).*/\1/p' "$TOP/include/epollcr_image.h")
[ "$("$D$P/bin/epollcr" --version)" = "epollcr $version (image format $format)" ] ||
	fail "installed epollcr --version: $("$D$P/bin/epollcr" --version)"

# -- the header and pkg-config ---------------------------------------------
printf '#include <epollcr.h>\nint main(void) { return EPOLLCR_VERSION_NUMBER != ((%d << 16) | (%d << 8) | %d); }\n' \
	"$major" "$minor" "$patch" >"$WORK/hdr.c"
if "$cc" -std=c99 -pedantic -Wall -Wextra -Werror -I"$D$P/include" -o "$WORK/hdr" "$WORK/hdr.c" &&
	"$WORK/hdr"; then
	pass "the installed header compiles alone (-std=c99 -pedantic), EPOLLCR_VERSION_NUMBER is $version"
else
	fail "the installed header does not compile alone, or its version number is wrong"
fi

export PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_LIBDIR=$L/pkgconfig
pc_flags=$(PKG_CONFIG_SYSROOT_DIR=$D pkg-config --cflags --libs epollcr)
[ "$(echo $pc_flags)" = "-I$D$P/include -L$D$P/lib -lepollcr" ] &&
	pass "pkg-config (PKG_CONFIG_SYSROOT_DIR): $pc_flags" ||
	fail "pkg-config --cflags --libs epollcr gave '$pc_flags'"
dp_flags=$(pkg-config --define-prefix --cflags --libs epollcr)
[ "$(echo $dp_flags)" = "-I$D$P/include -L$D$P/lib -lepollcr" ] &&
	pass "pkg-config --define-prefix gives the same" ||
	fail "pkg-config --define-prefix gave '$dp_flags'"
pc_version=$(pkg-config --modversion epollcr)
[ "$pc_version" = "$version" ] && pass "pkg-config --modversion: $pc_version" ||
	fail "pkg-config --modversion: '$pc_version', expected $version"
preload=$(pkg-config --define-prefix --variable=preload epollcr)
[ "$preload" = "$D$P/lib/libepollcr.so.$major" ] && [ -e "$preload" ] &&
	pass "pkg-config --variable=preload: the soname link" ||
	fail "pkg-config --variable=preload gave '$preload'"
grep -q "^prefix=$P\$" "$L/pkgconfig/epollcr.pc" || fail "epollcr.pc does not say prefix=$P"

# -- the installed epollcr run finds the installed library ---------------
# run_env CMD...: CMD with no LD_LIBRARY_PATH, no EPOLLCR_LIB, and only the
# sanitizer runtime (if any) in LD_PRELOAD.
# (An array, not a function: `"${run_env[@]}" CMD &` keeps CMD's pid in $!.)
run_env=(env -u LD_LIBRARY_PATH -u EPOLLCR_LIB -u LD_PRELOAD
	${san_runtime:+LD_PRELOAD=$san_runtime})
want_lib=$D$P/lib/libepollcr.so.$major.$minor
check_run_finds() { # EPOLLCR_BINARY WANT_LIB WHAT
	local out
	out=$("${run_env[@]}" "$1" run -- sh -c 'echo "preload=$LD_PRELOAD"; grep -c libepollcr /proc/$$/maps' 2>&1)
	if grep -qx "preload=${san_runtime:+$san_runtime:}$2" <<<"$out" &&
		[ "$(tail -1 <<<"$out")" -gt 0 ]; then
		pass "$3 preloads $2 (mapped in the program)"
	else
		fail "$3: expected $2 preloaded and mapped, got: $out"
	fi
}
check_run_finds "$D$P/bin/epollcr" "$want_lib" "installed epollcr run"
mkdir -p "$WORK/elsewhere"
ln -s "$D$P/bin/epollcr" "$WORK/elsewhere/epollcr"
check_run_finds "$WORK/elsewhere/epollcr" "$want_lib" "epollcr run through a symlink"
mkdir -p "$WORK/lonely"
cp "$D$P/bin/epollcr" "$WORK/lonely/epollcr"
out=$("${run_env[@]}" "$WORK/lonely/epollcr" run -- true 2>&1)
status=$?
[ $status -eq 1 ] && grep -q "cannot find the library.*--lib PATH or EPOLLCR_LIB" <<<"$out" &&
	pass "without a library: exit 1, '$out'" ||
	fail "a lone epollcr run: status $status, '$out'"
out=$("${run_env[@]}" EPOLLCR_LIB="$WORK/none.so" "$D$P/bin/epollcr" run -- true 2>&1)
status=$?
[ $status -eq 1 ] && grep -q "$WORK/none.so" <<<"$out" &&
	pass "EPOLLCR_LIB naming no file: exit 1, '$out'" ||
	fail "EPOLLCR_LIB=$WORK/none.so: status $status, '$out'"

# -- the example, built against the staged install ----------------------
src=$D$P/share/doc/epollcr/examples/restore-embed.c
embed=$WORK/restore-embed
if "$cc" -std=c11 -Wall -Wextra -Werror -o "$embed" "$src" $pc_flags \
	-Wl,-rpath,"$D$P/lib" "${san_flags[@]}" 2>"$WORK/cc.err"; then
	pass "restore-embed.c built with: $cc -std=c11 ... \$(pkg-config --cflags --libs epollcr)"
else
	fail "building $src failed: $(cat "$WORK/cc.err")"
	finish
fi
resolved=$(ldd "$embed" | sed -n 's/.*libepollcr\.so\.[0-9]* => \([^ ]*\).*/\1/p')
[ "$resolved" = "$D$P/lib/libepollcr.so.$major" ] && pass "it loads $resolved" ||
	fail "restore-embed resolves libepollcr to '$resolved'"
v=$("$embed" --version)
[ "$v" = "restore-embed: header $version, library $version" ] && pass "$v" ||
	fail "restore-embed --version: '$v'"
"$embed" >/dev/null 2>&1
[ $? -eq 2 ] || fail "restore-embed without an image did not exit 2"
out=$("$embed" "$WORK/missing.img" 2>&1)
status=$?
[ $status -eq 1 ] && grep -q "missing.img" <<<"$out" &&
	pass "a missing image: exit 1, '$out'" || fail "a missing image: status $status, '$out'"

# A real image: epoll-server run by the installed epollcr, dumped by it.
server=$TOP/$BUILD/examples/epoll-server
"${run_env[@]}" "$D$P/bin/epollcr" run -- "$server" 0 >"$WORK/server.out" 2>&1 &
server_pid=$!
PIDS+=("$server_pid")
wait_for "$WORK/server.out" listening 20 || { fail "epoll-server did not start"; finish; }
if "$D$P/bin/epollcr" dump -o "$WORK/server.img" "$server_pid" >/dev/null &&
	"$D$P/bin/epollcr" show --json "$WORK/server.img" >"$WORK/server.json"; then
	nwatches=$(json_query "$WORK/server.json" 'sum(len(e["watches"]) for e in j["epoll"])')
	pass "installed epollcr dumped pid $server_pid: $nwatches watches"
	python3 "$TOP/test/integration/check_image.py" "$server_pid" "$WORK/server.json" ||
		fail "the image differs from the server's fdinfo"
else
	fail "installed epollcr could not dump pid $server_pid"
	finish
fi
stop "$server_pid"

# Restore it in the embedding example and hold it for inspection.
"$embed" --hold "$WORK/server.img" >"$WORK/embed.out" 2>"$WORK/embed.err" &
embed_pid=$!
PIDS+=("$embed_pid")
if wait_for "$WORK/embed.out" '^ready$' 20; then
	cat "$WORK/embed.out"
	grep -q "^restore-embed: restored $WORK/server.img with libepollcr $version: " "$WORK/embed.out" ||
		fail "restore-embed did not report the restore"
	listed=$(awk '/^epoll fd [0-9]+: [0-9]+ watch/ { n += $4 } END { print n + 0 }' "$WORK/embed.out")
	[ "$listed" -eq "$nwatches" ] && pass "restore-embed listed $listed watches from its fdinfo" ||
		fail "restore-embed listed $listed watches, the image has $nwatches"
	python3 "$TOP/test/integration/check_image.py" "$embed_pid" "$WORK/server.json" &&
		pass "the restored process's /proc/$embed_pid/fdinfo matches the image" ||
		fail "the restored process differs from the image"
	"$D$P/bin/epollcr" verify --pid "$embed_pid" "$WORK/server.img" &&
		pass "installed epollcr verify: identical" ||
		fail "epollcr verify --pid $embed_pid found differences"
else
	fail "restore-embed did not restore: $(cat "$WORK/embed.err")"
fi
stop "$embed_pid"

# -- man finds the installed pages -------------------------------------
if command -v man >/dev/null; then
	for page in epollcr libepollcr epollcr-image epollcr_restore; do
		out=$(MANPATH=$D$P/share/man MANWIDTH=80 LC_ALL=C.UTF-8 man -P cat "$page" 2>&1)
		grep -q "^NAME" <<<"$out" || fail "man $page: $(head -3 <<<"$out")"
	done
	MANPATH=$D$P/share/man LC_ALL=C.UTF-8 man -P cat epollcr_restore 2>/dev/null |
		grep -q "epollcr_restore()" && pass "man finds epollcr(1), libepollcr(3), epollcr-image(5), epollcr_restore(3)" ||
		fail "man epollcr_restore does not show libepollcr(3)"
fi

# -- uninstall ---------------------------------------------------------
make_in uninstall DESTDIR="$D" || fail "make uninstall failed"
left=$(cd "$D" && find . \( -type f -o -type l \))
[ -z "$left" ] && pass "make uninstall removed every file" ||
	fail "make uninstall left: $(echo $left)"
[ ! -e "$D$P/share/doc/epollcr" ] || fail "make uninstall left $P/share/doc/epollcr"

# -- other layouts: Debian multiarch, lib64 ----------------------------
multiarch=$("$cc" -print-multiarch 2>/dev/null)
for layout in "/usr /usr/lib/${multiarch:-lib64}" "/opt/epollcr /opt/epollcr/lib64"; do
	read -r prefix libdir <<<"$layout"
	D2=$WORK/stage-${prefix//\//_}
	if ! make_in install DESTDIR="$D2" PREFIX="$prefix" LIBDIR="$libdir"; then
		fail "make install PREFIX=$prefix LIBDIR=$libdir failed"
		continue
	fi
	[ -L "$D2$libdir/libepollcr.so.$major" ] && [ -f "$D2$prefix/bin/epollcr" ] ||
		fail "PREFIX=$prefix LIBDIR=$libdir: not where expected"
	grep -qx "libdir=\${prefix}${libdir#$prefix}" "$D2$libdir/pkgconfig/epollcr.pc" ||
		fail "epollcr.pc for LIBDIR=$libdir: $(grep ^libdir "$D2$libdir/pkgconfig/epollcr.pc")"
	check_run_finds "$D2$prefix/bin/epollcr" "$D2$libdir/libepollcr.so.$major.$minor" \
		"epollcr run with LIBDIR=$libdir"
	make_in uninstall DESTDIR="$D2" PREFIX="$prefix" LIBDIR="$libdir" ||
		fail "make uninstall PREFIX=$prefix failed"
	left=$(cd "$D2" && find . \( -type f -o -type l \))
	[ -z "$left" ] && pass "PREFIX=$prefix LIBDIR=$libdir: installed, used, uninstalled" ||
		fail "make uninstall PREFIX=$prefix left: $(echo $left)"
done

[ "$(ls -d /usr/local/lib/libepollcr* /usr/local/bin/epollcr 2>/dev/null)" = "$real_usr_local" ] ||
	fail "/usr/local changed during the test"
finish
