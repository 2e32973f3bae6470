#!/usr/bin/env bash
# Make sure the Debian packages epollcr needs are present.
#   tools/deps.sh build   what `make` and `make check` need
#   tools/deps.sh all     also the real programs of the integration tests,
#                         the fuzzer's and the sanitizers' runtimes, valgrind
# As root, missing packages are installed with apt-get; otherwise the script
# names them and fails.
set -eu
what=${1:-build}
# binutils: readelf and nm (test_abi); man-db and groff-base: man pages
# rendered with warnings (test_man, test_install).
# golang-go and libc6-dev (its static libc.a): test_kernel_go builds a Go
# net/http server, test_kernel_only a statically linked C program.
build_pkgs="gcc make pkg-config libunwind-dev libcmocka-dev util-linux procps iproute2 python3 binutils man-db groff-base"
all_pkgs="$build_pkgs clang libclang-rt-14-dev clang-tidy cppcheck valgrind redis-server redis-tools memcached nginx-light nodejs golang-go libc6-dev"
case $what in
build) want=$build_pkgs ;;
all) want=$all_pkgs ;;
*) echo "usage: $0 build|all" >&2; exit 2 ;;
esac
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
if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
