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
exit "$status"
