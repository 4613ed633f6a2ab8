#!/usr/bin/env bash
# Installs the Redis server used by confit's tests (Debian's redis-server,
# 7.0.x) and prints the path of redis-server.
#
# apt-get waits a bounded time for the dpkg lock (other installs may hold
# it) and starts no service: a policy-rc.d that denies service starts is in
# place for the install only. A binary already on PATH (or in
# $CONFIT_REDIS_BIN) is reused.
#
# Usage: scripts/servers/redis.sh   -> prints /abs/path/to/redis-server
set -euo pipefail

if [[ -n "${CONFIT_REDIS_BIN:-}" && -x "$CONFIT_REDIS_BIN" ]]; then
	echo "$CONFIT_REDIS_BIN"
	exit 0
fi
if bin="$(command -v redis-server)"; then
	echo "$bin"
	exit 0
fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
apt_install_quiet redis redis-server
command -v redis-server
