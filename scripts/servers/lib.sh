# Shared by the install scripts in scripts/servers (sourced, not run).
#
# install_from_proxy NAME VERSION MODULE PACKAGE [IMPORT]
#   Prints the path of <repo>/.cache/servers/NAME-VERSION/NAME, building it
#   first when it is not there: MODULE@vVERSION is fetched from the Go module
#   proxy into a throwaway module (outside the repository's go.mod) and
#   PACKAGE built. IMPORT, if given, is imported by a tools.go so that
#   `go get` resolves the module's whole graph (Consul needs it). Concurrent
#   installs are serialised with flock; the binary appears by rename, never
#   half written.
install_from_proxy() {
	local name="$1" version="$2" module="$3" package="$4" import="${5:-}"
	local root dir bin work start
	root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
	dir="$root/.cache/servers/$name-$version"
	bin="$dir/$name"

	if [[ -x "$bin" ]]; then
		echo "$bin"
		return 0
	fi
	mkdir -p "$dir"
	# Serialise concurrent installs (several test binaries may ask at once).
	exec 9>"$dir/.lock"
	flock 9
	if [[ -x "$bin" ]]; then
		echo "$bin"
		return 0
	fi

	work="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand $work now
	trap "rm -rf '$work'" EXIT
	start=$(date +%s)
	echo "$name: building $module v$version from the module proxy in $work" >&2
	(
		cd "$work"
		# Keep the repository's and the caller's settings out of the throwaway build.
		unset GOWORK
		export GOFLAGS=-mod=mod
		go mod init "confit.invalid/${name}build" >/dev/null 2>&1
		if [[ -n "$import" ]]; then
			printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$import" >tools.go
		fi
		go get "$module@v$version" >&2
		go build -trimpath -ldflags="-s -w" -o "$work/$name" "$package" >&2
	)
	mv "$work/$name" "$bin.tmp"
	mv "$bin.tmp" "$bin"
	echo "$name: built $bin in $(($(date +%s) - start))s" >&2
	echo "$bin"
}

# apt_install_quiet NAME PACKAGE...
#   apt-get installs PACKAGEs (with root or sudo) starting no service: a
#   policy-rc.d that denies service starts is in place for the install
#   only. apt-get waits a bounded time (300 s) for the dpkg lock, which
#   other installs may hold. Progress goes to stderr, prefixed with NAME.
apt_install_quiet() {
	local name="$1" sudo= policy=/usr/sbin/policy-rc.d added= start rc=0
	shift
	if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
	start=$(date +%s)
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod +x "$policy"
		added=1
	fi
	echo "$name: apt-get install $*" >&2
	local apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
	{ $sudo apt-get "${apt_opts[@]}" update >&2 &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@" >&2; } || rc=$?
	if [[ -n $added ]]; then $sudo rm -f "$policy"; fi
	if [[ $rc != 0 ]]; then return "$rc"; fi
	echo "$name: installed $* in $(($(date +%s) - start))s" >&2
}
