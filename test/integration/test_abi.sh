#!/usr/bin/env bash
# The library's ABI and version, judged against the sources:
# - the dynamic symbols libepollcr.so defines (readelf --dyn-syms, and
#   nm -D --defined-only, which must agree) are exactly the API functions
#   of include/epollcr.h plus the libc names the shim wraps (every SHIM_API
#   definition in shim/*.c): any extra or missing symbol fails;
# - each API function carries the version node shim/libepollcr.map gives
#   it (@@EPOLLCR_0.1), the map lists exactly the header's API, and the
#   wrapped names are unversioned;
# - the soname is libepollcr.so.MAJOR (MAJOR from include/epollcr.h);
# - the version of the header, `epollcr --version`, epollcr_version() of
#   the library (through an embedding program) and the version recorded in
#   an image are one and the same.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hdr=$TOP/include/epollcr.h
map=$TOP/shim/libepollcr.map
for tool in readelf nm; do
	command -v $tool >/dev/null || { fail "$tool (binutils) is missing"; finish; }
done

# -- what the sources say ---------------------------------------------------
version_part() { sed -n "s/^#define EPOLLCR_VERSION_$1 \([0-9]*\)$/\1/p" "$hdr"; }
major=$(version_part MAJOR) minor=$(version_part MINOR) patch=$(version_part PATCH)
version=$major.$minor.$patch
[[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ && $patch =~ ^[0-9]+$ ]] ||
	{ fail "cannot read the version from $hdr (got '$version')"; finish; }
api=$(sed -n 's/^EPOLLCR_EXPORT .*[ *]\([a-z_0-9]*\)(.*/\1/p' "$hdr" | sort)
wrapped=$(sed -n 's/^SHIM_API .*[ *]\([A-Za-z_0-9]*\)(.*/\1/p' "$TOP"/shim/*.c |
	sort -u | comm -23 - <(echo "$api"))
echo "header: version $version, API: $(echo $api)"
echo "shim/*.c wraps $(echo "$wrapped" | wc -l) libc names: $(echo $wrapped)"
[ "$(echo "$api" | wc -w)" -ge 4 ] || fail "fewer than 4 API functions read from $hdr"
[ "$(echo "$wrapped" | wc -w)" -ge 20 ] || fail "fewer than 20 wrapped names read from shim/*.c"

# "symbol node" for every name in a global: list of the version script.
map_nodes=$(awk '
	/^[A-Za-z_][A-Za-z_0-9.]* *\{/ { node = $1; next }
	/^\}/ { node = "" }
	/global:/ { global = 1; next }
	/local:/ { global = 0; next }
	node != "" && global && /^[ \t]*[A-Za-z_][A-Za-z_0-9]*;/ {
		gsub(/[ \t;]/, ""); print $0, node }' "$map" | sort)
echo "version script: $(echo $map_nodes)"
if [ "$(cut -d' ' -f1 <<<"$map_nodes")" = "$api" ]; then
	pass "the version script exports exactly the header's API"
else
	fail "shim/libepollcr.map lists [$(cut -d' ' -f1 <<<"$map_nodes" | xargs)], include/epollcr.h declares [$(echo $api)]"
fi

# -- what the library defines ---------------------------------------------
# readelf: defined (Ndx not UND) global or weak symbols, minus the version
# nodes themselves (ABS objects named after a node).
nodes=$(cut -d' ' -f2 <<<"$map_nodes" | sort -u)
readelf_syms() {
	readelf --dyn-syms -W "$1" | awk -v nodes="$(echo $nodes)" '
		BEGIN { n = split(nodes, a, " "); for (i = 1; i <= n; i++) skip[a[i]] = 1 }
		$1 ~ /^[0-9]+:$/ && $7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") {
			name = $8; sub(/@.*/, "", name)
			if (!(name in skip)) print $8 }' | sort
}
nm_syms() {
	nm -D --defined-only "$1" | awk -v nodes="$(echo $nodes)" '
		BEGIN { n = split(nodes, a, " "); for (i = 1; i <= n; i++) skip[a[i]] = 1 }
		NF == 3 { name = $3; sub(/@.*/, "", name); if (!(name in skip)) print $3 }' | sort
}

# compare_sets WHAT EXPECTED ACTUAL: one line per missing or extra name.
compare_sets() {
	local missing extra
	missing=$(comm -23 <(echo "$2" | sort) <(echo "$3" | sort) | xargs)
	extra=$(comm -13 <(echo "$2" | sort) <(echo "$3" | sort) | xargs)
	[ -z "$missing" ] || echo "$1: missing: $missing"
	[ -z "$extra" ] || echo "$1: extra: $extra"
	[ -z "$missing$extra" ]
}

# The checker itself must see a missing and an extra name.
out=$(compare_sets self-check "$(printf 'a\nb\nc')" "$(printf 'a\nc\nd')")
if [ "$out" = "$(printf 'self-check: missing: b\nself-check: extra: d')" ]; then
	pass "the comparison reports a missing and an extra symbol"
else
	fail "the comparison did not report b missing and d extra: $out"
fi

syms=$(readelf_syms "$LIB")
echo "$LIB defines $(echo "$syms" | wc -l) dynamic symbols"
names=$(sed 's/@.*//' <<<"$syms" | sort)
if compare_sets "readelf --dyn-syms $LIB" "$(printf '%s\n%s' "$api" "$wrapped")" "$names"; then
	pass "exported symbols are exactly the $(echo $api | wc -w) API functions and the $(echo $wrapped | wc -w) wrapped libc names"
else
	fail "the exported symbols differ from the API + wrapped names"
fi
if compare_sets "nm -D --defined-only vs readelf" "$syms" "$(nm_syms "$LIB")"; then
	pass "nm -D --defined-only agrees with readelf"
else
	fail "nm and readelf disagree about the exported symbols"
fi

# Versions: API names exactly NAME@@NODE (the default version), wrapped
# names with no version at all.
bad=0
while read -r name node; do
	[ -n "$name" ] || continue
	grep -qxF "$name@@$node" <<<"$syms" ||
		{ fail "$name is not exported as $name@@$node: $(grep "^$name@" <<<"$syms" || echo absent)"; bad=1; }
done <<<"$map_nodes"
[ $bad -eq 0 ] && pass "every API function carries its node's default version ($(echo $nodes))"
versioned=$(for name in $wrapped; do
	grep -qxF "$name" <<<"$syms" || grep "^$name@" <<<"$syms"
done | xargs)
[ -z "$versioned" ] && pass "the wrapped libc names are unversioned" ||
	fail "wrapped names that carry a version: $versioned"

soname=$(readelf -d "$LIB" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libepollcr.so.$major" ] && pass "soname $soname" ||
	fail "soname is '$soname', expected libepollcr.so.$major"

# -- one version everywhere ---------------------------------------------
format=$(sed -n 's/^#define IMAGE_VERSION \([0-9]*\).*/\1/p' "$TOP/include/epollcr_image.h")
cli_version=$("$CLI" --version)
[ "$cli_version" = "epollcr $version (image format $format)" ] &&
	pass "epollcr --version: $cli_version" ||
	fail "epollcr --version printed '$cli_version', the header says $version"
for cmd in run dump show verify restore ps; do
	v=$("$CLI" $cmd --version)
	[ "$v" = "$cli_version" ] || fail "epollcr $cmd --version printed '$v'"
done

embed=$TOP/$BUILD/examples/restore-embed
if [ -x "$embed" ]; then
	# It must run with this build's library, through the soname link.
	resolved=$(ldd "$embed" | sed -n 's/.*libepollcr\.so\.[0-9]* => \([^ ]*\).*/\1/p')
	if [ -n "$resolved" ] && [ "$(realpath "$resolved")" = "$(realpath "$LIB")" ]; then
		pass "restore-embed loads $LIB (as $(basename "$resolved"))"
	else
		fail "restore-embed resolves libepollcr to '$resolved', not $LIB"
	fi
	v=$("$embed" --version)
	[ "$v" = "restore-embed: header $version, library $version" ] &&
		pass "epollcr_version() of the library: $v" ||
		fail "restore-embed --version printed '$v', expected $version for both"
else
	fail "$embed is not built (make examples)"
fi

# An image records the version of the library that wrote it.
READY=listening start server "$TOP/$BUILD/examples/epoll-server" 0 ||
	{ fail "epoll-server did not start under the shim"; finish; }
pid=$STARTED_PID
if "$CLI" dump -o "$WORK/v.img" "$pid" >/dev/null &&
	"$CLI" show --json "$WORK/v.img" >"$WORK/v.json"; then
	img_version=$(json_query "$WORK/v.json" 'j["version"]')
	[ "$img_version" = "$version" ] && pass "the image records version $img_version" ||
		fail "the image records version '$img_version', expected $version"
	grep -q "by epollcr $version" <("$CLI" show --no-addr2line "$WORK/v.img") &&
		pass "epollcr show prints it" || fail "epollcr show does not print 'by epollcr $version'"
else
	fail "could not dump epoll-server (pid $pid)"
fi
stop "$pid"
finish
