#!/usr/bin/env bash
# The shipped binaries are built with Debian's hardening flags (Makefile
# HARDEN_CFLAGS, HARDEN_LDFLAGS), as readelf sees them:
# - full RELRO: a GNU_RELRO segment and BIND_NOW (FLAGS BIND_NOW or
#   FLAGS_1 NOW) in the dynamic section;
# - -fstack-protector-strong: __stack_chk_fail is imported;
# - -D_FORTIFY_SOURCE=2 (not under a sanitizer, which leaves it out): at
#   least one fortified libc call (__*_chk) is imported.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v readelf >/dev/null || { fail "readelf (binutils) is missing"; finish; }

check_binary() {
	local f=$1 dyn syms
	[ -f "$f" ] || { fail "$f is missing (make all examples)"; return; }
	dyn=$(readelf -W -d "$f")
	syms=$(readelf -W --dyn-syms "$f")
	readelf -W -l "$f" | grep -q GNU_RELRO &&
		pass "$(basename "$f"): GNU_RELRO" ||
		fail "$(basename "$f"): no GNU_RELRO segment (-Wl,-z,relro)"
	echo "$dyn" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' &&
		pass "$(basename "$f"): BIND_NOW" ||
		fail "$(basename "$f"): not bound at load (-Wl,-z,now)"
	echo "$syms" | grep -q '__stack_chk_fail' &&
		pass "$(basename "$f"): stack protector" ||
		fail "$(basename "$f"): no __stack_chk_fail (-fstack-protector-strong)"
	if [ "$san_build" = no ]; then
		echo "$syms" | grep -Eq ' __[a-z_0-9]+_chk(@| |$)' &&
			pass "$(basename "$f"): fortified calls" ||
			fail "$(basename "$f"): no __*_chk call (-D_FORTIFY_SOURCE=2)"
	fi
}

# A sanitizer build (the CLI carries its runtime's symbols; under
# SAN=thread the library itself is not instrumented) has no fortified calls.
san_build=no
readelf -W --dyn-syms "$CLI" 2>/dev/null | grep -Eq '__(asan|tsan|ubsan)_' &&
	san_build=yes
echo "sanitizer build: $san_build"
check_binary "$LIB"
check_binary "$CLI"
finish
