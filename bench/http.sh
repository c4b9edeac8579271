#!/usr/bin/env bash
# End-to-end benchmarks of package cancelhttp and the printed tables: memory
# and goroutines per in-flight request against plain net/http; time from a
# client leaving (closed connection with or without a body, chunked,
# Expect: 100-continue, pipelined; HTTP/2 stream reset) to the handler's
# return; middleware requests/s against plain net/http, medians of
# alternating rounds.
#
#   bash bench/http.sh                      # 300 disconnects per mode, 31 rounds of 300ms
#   GODEBUG=adaptivestackstart=0 bash bench/http.sh   # goroutine stacks without adaptive sizing
#   bash bench/http.sh -rounds 15 -round 2s # flags go to bench/http/cmd/httpbench
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/httpbench" ./http/cmd/httpbench
echo "$(go version), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
"$tmp/httpbench" "$@"
