#!/usr/bin/env bash
# Installs the etcd server binary used by confit's tests and prints its path.
#
# etcd is built from the Go module proxy in a throwaway module (outside the
# repository's go.mod) and cached in <repo>/.cache/servers/etcd-<version>/etcd.
# A cached binary is reused. Override the version with ETCD_VERSION.
#
# Usage: scripts/servers/etcd.sh   -> prints /abs/path/to/etcd on stdout
set -euo pipefail

version="${ETCD_VERSION:-3.7.3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/.cache/servers/etcd-$version"
bin="$dir/etcd"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Serialise concurrent installs (several test binaries may ask at once).
exec 9>"$dir/.lock"
flock 9
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "etcd.sh: building etcd v$version from the module proxy in $work" >&2
(
	cd "$work"
	# Keep the repository's and the caller's settings out of the throwaway build.
	unset GOWORK
	export GOFLAGS=-mod=mod
	go mod init confit.invalid/etcdbuild >/dev/null 2>&1
	go get "go.etcd.io/etcd/server/v3@v$version" >&2
	go build -trimpath -ldflags="-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3 >&2
)
mv "$work/etcd" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "etcd.sh: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
