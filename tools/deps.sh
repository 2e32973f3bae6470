#!/usr/bin/env bash
# Make sure the Debian packages epollcr needs are present.
#   tools/deps.sh demo    what `make` and `make demo` need
#   tools/deps.sh build   also what `make check` needs (the default; `test`
#                         is the same set)
#   tools/deps.sh all     also the real programs of the integration tests,
#                         the fuzzer's and the sanitizers' runtimes, valgrind,
#                         the lint tools
#   tools/deps.sh --list SET   print the set's packages, one a line
# As root, missing packages are installed with apt-get, which waits up to
# DEPS_LOCK_WAIT seconds (300) for another apt or dpkg holding its locks;
# otherwise the script names them and fails.
set -eu
list=
if [ "${1:-}" = --list ]; then
	list=1; shift
fi
what=${1:-build}
# gcc and libc6-dev: the build (gcc only recommends libc6-dev); libunwind8:
# the backtraces of registrations (loaded at run time, libunwind.so.8).
demo_pkgs="gcc libc6-dev make libunwind8"
# golang-go: test_kernel_go builds a Go net/http server (libc6-dev, in the
# demo set, gives test_kernel_only its static libc.a).
# libcmocka-dev: unit tests; binutils: readelf and nm (test_abi); man-db and
# groff-base: man pages rendered with warnings (test_man, test_install).
build_pkgs="$demo_pkgs pkg-config libunwind-dev libcmocka-dev util-linux procps iproute2 python3 binutils man-db groff-base"
all_pkgs="$build_pkgs clang libclang-rt-14-dev clang-tidy cppcheck valgrind redis-server redis-tools memcached nginx-light nodejs golang-go haproxy lighttpd"
case $what in
demo) want=$demo_pkgs ;;
build | test) want=$build_pkgs ;;
all) want=$all_pkgs ;;
*) echo "usage: $0 [--list] demo|build|test|all" >&2; exit 2 ;;
esac
if [ -n "$list" ]; then
	printf '%s\n' $want
	exit 0
fi
missing=()
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
# nodejs may come from elsewhere than Debian: a working node is enough.
if [[ " ${missing[*]-} " == *" nodejs "* ]] && command -v node >/dev/null; then
	missing=("${missing[@]/nodejs/}")
fi
missing=($(printf '%s\n' "${missing[@]-}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

wait_s=${DEPS_LOCK_WAIT:-300}
case $wait_s in
'' | *[!0-9]*) echo "deps: DEPS_LOCK_WAIT must be a number of seconds, not '$wait_s'" >&2; exit 2 ;;
esac
# apt-get install waits for dpkg's locks itself (DPkg::Lock::Timeout);
# apt-get update does not wait for the lists lock (apt 2.6): retry it while
# the only error is a lock held by another process, for as long.
apt_update() {
	local deadline=$((SECONDS + wait_s)) out said=
	while :; do
		if out=$(apt-get -o DPkg::Lock::Timeout="$wait_s" update -qq 2>&1); then
			[ -n "$out" ] && printf '%s\n' "$out"
			return 0
		fi
		if ! grep -q 'Could not get lock\|Unable to lock' <<<"$out"; then
			printf '%s\n' "$out" >&2
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			printf '%s\n' "$out" >&2
			echo "deps: apt's lock still held after ${wait_s}s: giving up" >&2
			return 1
		fi
		[ -n "$said" ] || echo "deps: another apt holds its lock: waiting (at most ${wait_s}s)"
		said=1
		sleep 2
	done
}

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_update
apt-get -o DPkg::Lock::Timeout="$wait_s" install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null
