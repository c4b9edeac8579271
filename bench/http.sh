#!/usr/bin/env bash
# End-to-end benchmarks of package cancelhttp (stop latency after a client
# disconnect or HTTP/2 stream reset; middleware requests/s against a bare
# handler, medians of alternating rounds) and the printed table.
#
#   bash bench/http.sh                      # 300 disconnects per mode, 31 rounds of 300ms
#   bash bench/http.sh -rounds 15 -round 2s # flags go to bench/http/cmd/httpbench
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/httpbench" ./http/cmd/httpbench
echo "$(go version), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
"$tmp/httpbench" "$@"
