#!/usr/bin/env bash
# Installs the ZooKeeper server used by confit's tests (Debian's zookeeper
# package, 3.8.x, run on the preinstalled Java 17) and prints the path of
# zookeeper.jar. The tests start it themselves with java (see
# internal/testserver/zookeeper.go).
#
# apt-get waits a bounded time for the dpkg lock (other installs may hold
# it) and starts no service: a policy-rc.d that denies service starts is in
# place for the install only (the zookeeperd package, which would start
# one, is not installed). A jar already there (or in $CONFIT_ZOOKEEPER_JAR)
# is reused.
#
# Usage: scripts/servers/zookeeper.sh   -> prints /abs/path/to/zookeeper.jar
set -euo pipefail

jar="${CONFIT_ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}"
if [[ -f "$jar" ]] && command -v java >/dev/null 2>&1; then
	echo "$jar"
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
pkgs=(zookeeper)
command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
echo "zookeeper: apt-get install ${pkgs[*]}" >&2
apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
$SUDO apt-get "${apt_opts[@]}" update >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends "${pkgs[@]}" >&2
if [[ ! -f "$jar" ]]; then
	echo "zookeeper: $jar missing after the install" >&2
	exit 1
fi
echo "zookeeper: installed $jar in $(($(date +%s) - start))s" >&2
echo "$jar"
