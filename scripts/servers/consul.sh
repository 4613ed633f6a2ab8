#!/usr/bin/env bash
# Installs the Consul agent binary used by confit's tests and prints its path.
#
# Consul is not packaged for Debian, and releases after 1.14 either cannot be
# built from the module proxy (1.15, 1.16) or are not open source (1.17+), so
# v1.14.11 is built from the Go module proxy in a throwaway module (outside
# the repository's go.mod) and cached in
# <repo>/.cache/servers/consul-<version>/consul. A cached binary is reused.
# A cold build takes about 5 minutes. Override the version with CONSUL_VERSION.
#
# Usage: scripts/servers/consul.sh   -> prints /abs/path/to/consul on stdout
set -euo pipefail

version="${CONSUL_VERSION:-1.14.11}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/.cache/servers/consul-$version"
bin="$dir/consul"

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
echo "consul.sh: building consul v$version from the module proxy in $work (about 5 min)" >&2
(
	cd "$work"
	# Keep the repository's and the caller's settings out of the throwaway build.
	unset GOWORK
	export GOFLAGS=-mod=mod
	go mod init confit.invalid/consulbuild >/dev/null 2>&1
	cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/consul"
GO
	go get "github.com/hashicorp/consul@v$version" >&2
	go build -trimpath -ldflags="-s -w" -o "$work/consul" github.com/hashicorp/consul >&2
)
# Write next to the destination, then rename, so a reader never sees half a binary.
mv "$work/consul" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "consul.sh: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
