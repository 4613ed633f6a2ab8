#!/usr/bin/env bash
# Runs every test with the race detector (after scripts/test-deps.sh), then
# prints the HAProxy scenario's figures and a closing summary line.
#
# A test that fails is run once more, alone (go test -run '^Name$' on its
# package). If every failed test passes on that rerun, the run passes, and
# the summary names each one as FLAKY with the lines its first failure
# logged: a flake is reported, never hidden, and it is a bug to fix. A
# package that fails without naming a failed test (a build failure, a
# panic, a timeout) is not rerun.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
log=.cache/test.log
rm -f "$log.rerun"
# TEST_PKGS narrows the run (default: every package).
go test -race -timeout 40m -count=1 ${TEST_PKGS:-./...} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
cat .cache/haproxy-figures.txt 2>/dev/null || true
passed=$(grep -c '^ok ' "$log")
failed_pkgs=$(grep -cE '^FAIL[[:space:]]+github' "$log")
echo
echo "packages: $passed passed, $failed_pkgs failed"

# failures prints each failed test of a go test log with the first lines
# it logged, and any panic.
failures() {
	awk '
		/^[[:space:]]*--- FAIL:/ { n = 8; print; next }
		/^panic: / { n = 12; print; next }
		/^FAIL[[:space:]]+github/ { n = 0; print; next }
		n > 0 && /^[[:space:]]/ { n--; print; next }
		{ n = 0 }
	' "$1" | head -n 60
}

if [ "$status" -ne 0 ]; then
	# "package TestA|TestB" per failed package; "package -" when it named
	# no failed test. go test prints a package's output in one piece, its
	# FAIL line last.
	plan=$(awk '
		/^--- FAIL: / { t = $3; tests = tests ? tests "|" t : t; next }
		/^ok / { tests = ""; next }
		/^FAIL[[:space:]]+github/ { print $2, (tests ? tests : "-"); tests = ""; next }
	' "$log")
	rerun_ok=1
	if [ -z "$plan" ] || grep -q ' -$' <<<"$plan"; then
		rerun_ok=0
	fi
	if [ "$rerun_ok" -eq 1 ]; then
		echo "rerunning the failed tests once, alone:"
		while read -r pkg tests; do
			echo "  $pkg: $tests"
			if ! go test -race -timeout 20m -count=1 -run "^($tests)\$" "$pkg" >>"$log.rerun" 2>&1; then
				rerun_ok=0
			fi
		done <<<"$plan"
	fi
	if [ "$rerun_ok" -eq 1 ]; then
		echo "FLAKY (failed, then passed when run again alone; full output in $log):"
		failures "$log"
		exit 0
	fi
	# The end of a CI log is what a reader sees first.
	echo "failures (full output in $log${plan:+, reruns in $log.rerun}):"
	failures "$log"
	[ -f "$log.rerun" ] && { echo "on rerun:"; failures "$log.rerun"; }
fi
exit "$status"
