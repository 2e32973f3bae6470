#!/usr/bin/env bash
# The man pages (man/*): they render without a single warning, through
# man-db (`man --warnings -l`) and groff (-ww), in 80 columns; and they say
# what the code does, read from the code and the binaries themselves:
# - epollcr(1): every command of `epollcr --help`, every option of every
#   `epollcr COMMAND --help`, every exit status of cli/cli.h (and 127),
#   every EPOLLCR_* variable the command line reads or sets;
# - libepollcr(3): every API function of include/epollcr.h, every libc name
#   the shim wraps (SHIM_API in shim/*.c), every EPOLLCR_* variable the
#   shim reads;
# - epollcr-image(5): the format version, every record type with its number
#   and maximum payload, the kinds, the event mask of
#   include/epollcr_image.h;
# - a soname they name is libepollcr.so.MAJOR.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in man groff; do
	command -v $tool >/dev/null ||
		{ fail "$tool is missing (Debian packages man-db, groff-base: tools/deps.sh)"; finish; }
done
pages=("$TOP/man/epollcr.1" "$TOP/man/libepollcr.3" "$TOP/man/epollcr-image.5")

# render PAGE: the page as text in $WORK/NAME.txt; prints the warnings of
# man-db and of groff -ww (nothing when there are none).
render() {
	local txt=$WORK/$(basename "$1").txt
	LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$1" \
		2>&1 >"$txt" | sed 's/^/man: /'
	LC_ALL=C.UTF-8 groff -t -man -ww -z "$1" 2>&1 | sed 's/^/groff: /'
}

# The warning check must see a warning: a page with an unknown macro and
# an unknown escape.
printf '.TH BROKEN 1\n.SH NAME\nbroken \\- x\n.XX unknown\n\\qbad escape\n' >"$WORK/broken.1"
warnings=$(render "$WORK/broken.1")
[ -n "$warnings" ] && pass "a broken page is caught: $(head -1 <<<"$warnings")" ||
	fail "a page with an unknown macro rendered without a warning: the check proves nothing"

for page in "${pages[@]}"; do
	name=$(basename "$page")
	[ -f "$page" ] || { fail "$page is missing"; continue; }
	warnings=$(render "$page")
	[ -z "$warnings" ] && pass "$name renders without warnings" ||
		fail "$name: $warnings"
	txt=$WORK/$name.txt
	lines=$(wc -l <"$txt")
	[ "$lines" -gt 40 ] || fail "$name rendered to $lines lines only"
	wide=$(python3 -c 'import sys
for n, l in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if len(l.rstrip("\n")) > 80: print(n, repr(l))' "$txt")
	[ -z "$wide" ] && pass "$name fits in 80 columns ($lines lines)" ||
		fail "$name has lines wider than 80 columns: $wide"
done

# has PAGE TEXT WHAT: TEXT must appear in the rendered PAGE (lines joined,
# so that a phrase may wrap).
for page in "${pages[@]}"; do
	name=$(basename "$page")
	tr -s '[:space:]' ' ' <"$WORK/$name.txt" >"$WORK/$name.flat"
done
has() {
	grep -qF -- "$2" "$WORK/$1.flat" || { fail "$1 does not mention $3 '$2'"; return 1; }
}

# -- epollcr(1) against the binary --------------------------------------
missing=0 checked=0
commands=$("$CLI" --help | awk '/^commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }')
[ "$(echo $commands)" = "run dump show verify restore ps" ] ||
	fail "epollcr --help lists commands [$(echo $commands)]"
for cmd in $commands; do
	has epollcr.1 "epollcr $cmd" command || missing=$((missing + 1))
	# Every long option and short option the usage shows.
	opts=$("$CLI" $cmd --help | grep -oE '(^|[ [,|])--?[a-z][a-z0-9-]*' |
		sed 's/^[ [,|]//' | sort -u)
	for opt in $opts --help --version; do
		checked=$((checked + 1))
		has epollcr.1 "$opt" "the $cmd option" || missing=$((missing + 1))
	done
	# "-o, --output" as the usage pairs them.
	while read -r pair; do
		[ -n "$pair" ] || continue
		checked=$((checked + 1))
		has epollcr.1 "$pair" "the $cmd option" || missing=$((missing + 1))
	done < <("$CLI" $cmd --help | grep -oE -- '-[a-zA-Z], --[a-z][a-z0-9-]*')
done
[ $missing -eq 0 ] && pass "epollcr.1 describes every command and every option of their --help ($checked options)"

# Exit statuses: every CLI_* value, and 127 (exec failed).
statuses=$(sed -n 's/^#define CLI_[A-Z]* \([0-9]*\).*/\1/p' "$TOP/cli/cli.h")
[ "$(echo $statuses)" = "0 1 2" ] || fail "cli/cli.h defines exit statuses [$(echo $statuses)]"
section=$(sed -n '/^EXIT STATUS/,/^[A-Z]/p' "$WORK/epollcr.1.txt")
for s in $statuses 127; do
	grep -qE "^ +$s +[A-Za-z]" <<<"$section" || fail "epollcr.1 EXIT STATUS does not describe $s"
done
pass "epollcr.1 EXIT STATUS: $(echo $statuses) 127"

# Environment: every EPOLLCR_* the command line reads or sets.
cli_env=$(grep -ohE '(getenv|setenv)\("EPOLLCR_[A-Z_]+"' "$TOP"/cli/*.c "$TOP"/recorder/*.c |
	grep -oE 'EPOLLCR_[A-Z_]+' | sort -u)
for v in $cli_env; do has epollcr.1 "$v" variable; done
pass "epollcr.1 names $(echo $cli_env)"

# -- libepollcr(3) against the sources ------------------------------------
api=$(sed -n 's/^EPOLLCR_EXPORT .*[ *]\([a-z_0-9]*\)(.*/\1/p' "$TOP/include/epollcr.h")
wrapped=$(sed -n 's/^SHIM_API .*[ *]\([A-Za-z_0-9]*\)(.*/\1/p' "$TOP"/shim/*.c |
	sort -u | comm -23 - <(echo "$api" | sort))
# Every "EPOLLCR_..." string of the shim: getenv() is not always called on
# the literal itself (a helper reads a depth by its variable's name).
shim_env=$(grep -ohE '"EPOLLCR_[A-Z_]+"' "$TOP"/shim/*.c | grep -oE 'EPOLLCR_[A-Z_]+' | sort -u)
[ "$(echo $api | wc -w)" -ge 4 ] && [ "$(echo $wrapped | wc -w)" -ge 20 ] &&
	[ "$(echo $shim_env | wc -w)" -ge 4 ] || fail "too few names read from the sources"
missing=0
for f in $api; do
	grep -q "^ *int $f(\|^ *const char \*$f(" "$WORK/libepollcr.3.txt" ||
		{ fail "libepollcr.3 SYNOPSIS does not declare $f()"; missing=1; }
	has libepollcr.3 "$f()" "the function" || missing=1
done
for f in $wrapped; do has libepollcr.3 "$f" "the wrapped function" || missing=1; done
for v in $shim_env; do has libepollcr.3 "$v" "the variable" || missing=1; done
for v in EPOLLCR_SIGNAL EPOLLCR_DIR EPOLLCR_BACKTRACE EPOLLCR_LOG; do
	has epollcr.1 "$v" variable || missing=1
done
[ $missing -eq 0 ] && pass "libepollcr.3 declares $(echo $api | wc -w) functions, names the $(echo $wrapped | wc -w) wrapped ones and $(echo $shim_env)"

# -- epollcr-image(5) against include/epollcr_image.h ---------------------
ih=$TOP/include/epollcr_image.h
format=$(sed -n 's/^#define IMAGE_VERSION \([0-9]*\).*/\1/p' "$ih")
has epollcr-image.5 "format, version $format" "the format version"
missing=0
while read -r rec num; do
	[ -n "$rec" ] || continue
	grep -qE "(^| )$num $rec( |$|,)" "$WORK/epollcr-image.5.txt" ||
		{ fail "epollcr-image.5 does not give record $rec its number $num"; missing=1; }
	grep -qE "$rec \(type $num" "$WORK/epollcr-image.5.txt" ||
		{ fail "epollcr-image.5 has no section '$rec (type $num'"; missing=1; }
done < <(sed -n 's/^\tIMAGE_REC_\([A-Z]*\) = \([0-9]*\),.*/\1 \2/p' "$ih")
for m in PROCESS MODULE BACKTRACE DIAG; do
	max=$(sed -n "s/^#define IMAGE_MAX_${m}_PAYLOAD \([0-9]*\).*/\1/p" "$ih")
	grep -A1 -E "^ +[0-9] $m\$|^ +[0-9] $m " "$WORK/epollcr-image.5.txt" | grep -q "at most $max bytes" ||
		{ fail "epollcr-image.5 does not give $m its maximum payload $max"; missing=1; }
done
for m in BATCH:65536 END:25; do
	macro=IMAGE_MAX_${m%%:*}_PAYLOAD
	[ "${m%%:*}" = END ] && macro=IMAGE_END_PAYLOAD_MAX
	max=$(sed -n "s/^#define $macro \([0-9]*\).*/\1/p" "$ih")
	has epollcr-image.5 "at most $max bytes" "the maximum of $macro" || missing=1
done
kinds=$(sed -n 's/^\tIMAGE_KIND_\([A-Z]*\) = \([0-9]*\),.*/\2 \1/p' "$ih" | grep -v COUNT |
	tr 'A-Z' 'a-z' | paste -sd, | sed 's/,/, /g')
has epollcr-image.5 "$kinds" "the kinds" || missing=1
mask=$(sed -n 's/^#define IMAGE_EVENTS_ALL \(0x[0-9a-f]*\)u.*/\1/p' "$ih")
has epollcr-image.5 "$mask" "the event mask" || missing=1
[ $missing -eq 0 ] && pass "epollcr-image.5 agrees with epollcr_image.h: version $format, records, maxima, kinds ($kinds), events $mask"
# Every field of every record that docs/image-format.md lists (its tables'
# "| [kind: ]name[, name...] | encoding |" rows).
fields=$(python3 -c 'import re, sys
names = set()
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^\| ([a-z_]+(?:: )?[a-z_, ]*?) +\| (u|s|b|zz|f\+1|path|u u u|6 × u) +\|", line)
    if m:
        for n in re.split(r",\s*", m.group(1).split(": ")[-1]):
            names.add(n.strip())
print(" ".join(sorted(names)))' "$TOP/docs/image-format.md")
missing=
for f in $fields; do
	grep -qE "(^|[ (])$f( \(|[ ,)]|$)" "$WORK/epollcr-image.5.flat" || missing="$missing $f"
done
[ "$(echo $fields | wc -w)" -ge 40 ] || fail "read only $(echo $fields | wc -w) fields from docs/image-format.md"
[ -z "$missing" ] && pass "epollcr-image.5 names all $(echo $fields | wc -w) fields of docs/image-format.md" ||
	fail "epollcr-image.5 does not name these fields of docs/image-format.md:$missing"

# -- the soname --------------------------------------------------------
major=$(sed -n 's/^#define EPOLLCR_VERSION_MAJOR \([0-9]*\)$/\1/p' "$TOP/include/epollcr.h")
sonames=$(cat "$WORK"/*.txt | grep -oE 'libepollcr\.so\.[0-9]+' | sort -u)
[ -n "$sonames" ] && [ "$(echo $sonames)" = "libepollcr.so.$major" ] &&
	pass "the pages name the soname libepollcr.so.$major" ||
	fail "the pages name [$(echo $sonames)], the soname is libepollcr.so.$major"
finish
