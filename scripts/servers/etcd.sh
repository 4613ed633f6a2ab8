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
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_from_proxy etcd "$version" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
