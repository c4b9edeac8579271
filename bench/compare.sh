#!/usr/bin/env bash
# Side-by-side benchmarks of package cancellation against context: runs every
# core benchmark ROUNDS times (cancellation and context back to back in each
# round, so the two alternate under the same machine load) and prints the
# median of each with the ratio and the target from the README table.
#
#   bash bench/compare.sh            # ROUNDS=7 BENCHTIME=300ms by default
#   ROUNDS=9 bash bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-7}
BENCHTIME=${BENCHTIME:-300ms}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/core.test" ./core
go build -o "$tmp/ratios" ./cmd/ratios
echo "$(go version), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" >&2
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	"$tmp/core.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" -test.benchmem >>"$tmp/raw.txt"
done
cp "$tmp/raw.txt" "${RAW_OUT:-/dev/null}"
"$tmp/ratios" "$@" <"$tmp/raw.txt"
