#!/usr/bin/env bash
# Benchmarks cmd/fetch against curl on loopback: throughput for a 1 GiB
# file (alternating runs, medians), peak RSS, and SIGINT-to-exit time.
# Needs only go and curl. Prints a markdown table (see docs/fetch.md).
#
#   bench/download.sh                      # 1 GiB, 5 runs each, 15 interrupts
#   SIZE=268435456 RUNS=3 bench/download.sh
#   BENCH_DIR=/dev/shm bench/download.sh   # write to tmpfs: no disk in the loop
set -euo pipefail
cd "$(dirname "$0")"

SIZE=${SIZE:-1073741824}
RUNS=${RUNS:-5}
INTERRUPTS=${INTERRUPTS:-15}
command -v curl >/dev/null || { echo "download.sh: curl is required" >&2; exit 1; }

tmp=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/fetchbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

(cd .. && go build -o "$tmp/fetch" ./cmd/fetch)
go build -o "$tmp/server" ./download/server
go build -o "$tmp/fetchbench" ./download/fetchbench

echo "# $(uname -srm), $(nproc) cores, $(go version | cut -d' ' -f3), $(curl --version | head -1 | cut -d' ' -f1-2)"
"$tmp/fetchbench" -fetch "$tmp/fetch" -server "$tmp/server" \
	-size "$SIZE" -runs "$RUNS" -interrupts "$INTERRUPTS" -dir "$tmp"
