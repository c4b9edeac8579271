#!/usr/bin/env bash
# Benchmarks cmd/fetch against curl and aria2c on loopback: a large file
# over one connection and over four (fetch -split 4, aria2c -x4 -s4), the
# same from a server that limits each response's rate, peak RSS, and
# SIGINT-to-exit time. The files go to the disk and to tmpfs, one table
# each. Needs go; curl and aria2c (Debian: apt-get install curl aria2)
# are compared when installed. Prints markdown tables (see docs/fetch.md).
#
#   bench/download.sh                            # 1 GiB, 5 runs each, 15 interrupts
#   SIZE=268435456 RUNS=3 bench/download.sh
#   DIRS=/dev/shm bench/download.sh              # only tmpfs
set -euo pipefail
cd "$(dirname "$0")"

SIZE=${SIZE:-1073741824}
LIMITED_SIZE=${LIMITED_SIZE:-134217728}
RATE=${RATE:-16777216}
RUNS=${RUNS:-5}
INTERRUPTS=${INTERRUPTS:-15}
DIRS=${DIRS:-"${TMPDIR:-/tmp} /dev/shm"}

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd .. && go build -o "$bin/fetch" ./cmd/fetch)
go build -o "$bin/server" ./download/server
go build -o "$bin/fetchbench" ./download/fetchbench

versions="$(uname -srm), $(nproc) cores, $(go version | cut -d' ' -f3)"
command -v curl >/dev/null && versions+=", $(curl --version | head -1 | cut -d' ' -f1-2)"
command -v aria2c >/dev/null && versions+=", $(aria2c --version | head -1)"
echo "# $versions"
for d in $DIRS; do
	tmp=$(mktemp -d "$d/fetchbench.XXXXXX")
	echo
	echo "# files in $d ($(df -T "$d" | awk 'NR==2 {print $2}'))"
	"$bin/fetchbench" -fetch "$bin/fetch" -server "$bin/server" -size "$SIZE" -limited-size "$LIMITED_SIZE" \
		-rate "$RATE" -runs "$RUNS" -interrupts "$INTERRUPTS" -dir "$tmp" || { rm -rf "$tmp"; exit 1; }
	rm -rf "$tmp"
done
