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
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_from_proxy consul "$version" github.com/hashicorp/consul github.com/hashicorp/consul github.com/hashicorp/consul
