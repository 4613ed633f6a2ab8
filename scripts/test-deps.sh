#!/usr/bin/env bash
# Installs the real servers the tests talk to, on a fresh Debian or Ubuntu
# machine with Go, git, make and a C compiler: HAProxy and nginx from apt
# (as root, or with sudo), etcd and Consul built from the Go module proxy.
# Built binaries are cached in .cache/servers and reused.
#
# apt waits, bounded by APT_LOCK_WAIT seconds (default 600), for another
# apt or dpkg to release its lock (a fresh cloud machine runs unattended
# upgrades). The packages are installed without starting or enabling their
# services: the tests start their own HAProxy and nginx.
set -euo pipefail

# apt_wait CMD...: runs an apt command; while it fails because another
# apt/dpkg holds the lock, says so once and retries every APT_LOCK_POLL
# seconds, for at most APT_LOCK_WAIT seconds. Other failures stop at once.
apt_wait() {
	local wait="${APT_LOCK_WAIT:-600}" poll="${APT_LOCK_POLL:-5}" start out said=
	start=$(date +%s)
	while :; do
		if out=$("$@" 2>&1); then
			return 0
		fi
		if ! grep -qiE 'could not get lock|unable to acquire the dpkg frontend lock|unable to lock' <<<"$out"; then
			printf '%s\n' "$out" >&2
			return 1
		fi
		if (($(date +%s) - start >= wait)); then
			printf '%s\n' "$out" >&2
			echo "test-deps: another apt/dpkg still holds its lock after ${wait}s; try again when it is done (APT_LOCK_WAIT=SECONDS waits longer)" >&2
			return 1
		fi
		if [ -z "$said" ]; then
			echo "test-deps: another apt/dpkg holds its lock (unattended upgrades?); waiting up to ${wait}s" >&2
			said=1
		fi
		sleep "$poll"
	done
}

# without_services CMD...: runs an apt-get install with a policy-rc.d that
# denies every service start (invoke-rc.d and deb-systemd-invoke honour
# it), unless one is already in place, then disables the services of the
# packages named in PACKAGES so they do not start at the next boot either.
POLICY_RC_D="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
without_services() {
	local ours=
	if [ ! -e "$POLICY_RC_D" ]; then
		printf '#!/bin/sh\n# written by confit scripts/test-deps.sh while it installs packages\nexit 101\n' | $SUDO tee "$POLICY_RC_D" >/dev/null
		$SUDO chmod 755 "$POLICY_RC_D"
		ours=1
	fi
	local status=0
	"$@" || status=$?
	if [ -n "$ours" ]; then
		$SUDO rm -f "$POLICY_RC_D"
	fi
	return "$status"
}

# disable_services NAME...: keeps the services of freshly installed
# packages from starting at boot (systemd only; a no-op elsewhere).
disable_services() {
	command -v systemctl >/dev/null 2>&1 || return 0
	local s
	for s in "$@"; do
		$SUDO systemctl disable --quiet "$s" >/dev/null 2>&1 || true
	done
}

main() {
	cd "$(dirname "$0")/.."
	local need_apt=() services=()
	command -v haproxy >/dev/null 2>&1 || { need_apt+=(haproxy); services+=(haproxy); } # examples/haproxy and its load test
	command -v nginx >/dev/null 2>&1 || { need_apt+=(nginx-light); services+=(nginx); } # examples/nginx check_cmd
	command -v gpg >/dev/null 2>&1 || need_apt+=(gnupg) # the crypt-format tests generate a key with gpg
	if [ ${#need_apt[@]} -gt 0 ]; then
		if ! command -v apt-get >/dev/null 2>&1; then
			echo "test-deps: ${need_apt[*]} missing and no apt-get here: install them with your package manager (not started as services), then run make test again" >&2
			exit 1
		fi
		echo "test-deps: apt-get install ${need_apt[*]} (services not started)"
		if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
		apt_wait $SUDO apt-get update -qq
		without_services apt_wait $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=60 "${need_apt[@]}"
		disable_services "${services[@]}"
	fi
	echo "test-deps: etcd and Consul (the first run builds them from the Go module proxy, ~1 and ~5 min; cached in .cache/servers)"
	./scripts/servers/etcd.sh >/dev/null
	./scripts/servers/consul.sh >/dev/null
	echo "test-deps: ZooKeeper (apt)"
	./scripts/servers/zookeeper.sh >/dev/null
	echo "test-deps: Redis (apt)"
	./scripts/servers/redis.sh >/dev/null
	echo "test-deps: ok"
}

SUDO=
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	main "$@"
fi
