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
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
start=$(date +%s)
policy=/usr/sbin/policy-rc.d
added_policy=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	added_policy=1
fi
cleanup() { if [[ -n $added_policy ]]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
echo "redis: apt-get install redis-server" >&2
apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
$SUDO apt-get "${apt_opts[@]}" update >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends redis-server >&2
bin="$(command -v redis-server)"
echo "redis: installed $bin in $(($(date +%s) - start))s" >&2
echo "$bin"
