#!/usr/bin/env bash
# Runs every test with the race detector (after scripts/test-deps.sh), then
# prints the HAProxy scenario's figures and a closing summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
log=.cache/test.log
go test -race -timeout 40m -count=1 ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
cat .cache/haproxy-figures.txt 2>/dev/null || true
passed=$(grep -c '^ok ' "$log")
failed_pkgs=$(grep -cE '^FAIL[[:space:]]+github' "$log")
echo
echo "packages: $passed passed, $failed_pkgs failed"
if [ "$status" -ne 0 ]; then
	# The end of a CI log is what a reader sees first: name each failed
	# test with the first lines it logged, and any panic.
	echo "failures (full output in $log):"
	awk '
		/^[[:space:]]*--- FAIL:/ { n = 8; print; next }
		/^panic: / { n = 12; print; next }
		/^FAIL[[:space:]]+github/ { n = 0; print; next }
		n > 0 && /^[[:space:]]/ { n--; print; next }
		{ n = 0 }
	' "$log" | head -n 60
fi
exit "$status"
