#!/usr/bin/env bash
# Installs the real servers the tests talk to, on a fresh machine with only
# Go, gcc and git. Built binaries are cached in .cache/servers and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)          # examples/haproxy and its load test
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)        # examples/nginx check_cmd
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "test-deps: apt-get install ${need_apt[*]}"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
./scripts/servers/etcd.sh >/dev/null
./scripts/servers/consul.sh >/dev/null
./scripts/servers/redis.sh >/dev/null
echo "test-deps: ok"
