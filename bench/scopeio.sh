#!/usr/bin/env bash
# Benchmarks cancellation.Scope beside errgroup and sourcegraph/conc's pool,
# and package cancelio beside a bare pipe Read and a goroutine-per-read
# wrapper; runs every benchmark ROUNDS times (all implementations back to
# back in each round, so they alternate under the same machine load) and
# prints the medians as a markdown table with the ratios and targets.
#
#   bash bench/scopeio.sh            # ROUNDS=9 BENCHTIME=200ms by default
#   ROUNDS=15 bash bench/scopeio.sh
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-9}
BENCHTIME=${BENCHTIME:-200ms}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/scope.test" ./scope
go test -c -o "$tmp/cancelio.test" ./cancelio
go build -o "$tmp/table" ./cmd/scopeio
echo "$(go version), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" >&2
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	"$tmp/scope.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" -test.benchmem >>"$tmp/raw.txt"
	"$tmp/cancelio.test" -test.run '^$' -test.bench 'PipeRead' -test.benchtime "$BENCHTIME" -test.benchmem >>"$tmp/raw.txt"
	"$tmp/cancelio.test" -test.run '^$' -test.bench 'CancelToReturn' -test.benchtime 300x >>"$tmp/raw.txt"
done
cp "$tmp/raw.txt" "${RAW_OUT:-/dev/null}"
"$tmp/table" "$@" <"$tmp/raw.txt"
