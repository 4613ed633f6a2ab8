#!/usr/bin/env bash
# Runs every fuzz target for a while (default 20s each): scripts/fuzz.sh 1m
#
# Go 1.26's fuzz coordinator can end a run that found nothing with a bare
# "context deadline exceeded" at the -fuzztime boundary (go.dev/issue/75804,
# fixed in Go 1.27). Such a run wrote no failing input; it is reported as a
# flake and the target's corpus is replayed as a plain test, which must
# pass. Any other failure, or a new input under testdata/fuzz, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-20s}"
flakes=0
while read -r f; do
	dir="$(dirname "${f#./}")"
	pkg="./$dir"
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		echo "fuzz: $pkg $name ($t)"
		corpus="$dir/testdata/fuzz/$name"
		before="$(ls "$corpus" 2>/dev/null | sort || true)"
		out="$(mktemp)"
		status=0
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg" 2>&1 | tee "$out" || status=$?
		if [ "$status" -ne 0 ]; then
			after="$(ls "$corpus" 2>/dev/null | sort || true)"
			if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out"; then
				echo "fuzz: $pkg $name: Go's fuzz coordinator ended with \"context deadline exceeded\" and wrote no input (go.dev/issue/75804); replaying the corpus"
				go test -count=1 -run "^${name}\$" "$pkg"
				flakes=$((flakes + 1))
			else
				rm -f "$out"
				exit "$status"
			fi
		fi
		rm -f "$out"
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
echo "fuzz: done ($flakes coordinator deadline flake(s) replayed)"
