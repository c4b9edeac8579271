#!/usr/bin/env bash
# Task systems side by side: River (Postgres, LISTEN/NOTIFY), asynq (Redis)
# and taskd's task package (NATS JetStream, embedded). Starts a throwaway
# Postgres (unix socket) and Redis (127.0.0.1, a free port) with their data
# in a temporary directory (Debian packages postgresql and redis-server;
# nothing outside loopback), runs bench/tasks/cmd/taskbench,
# prints the table and stops both servers.
#
#   bash bench/tasks.sh                  # 5 rounds; flags go to taskbench
#   bash bench/tasks.sh -rounds 3 -window 90s
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
chmod 755 "$tmp"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ] || ! command -v redis-server >/dev/null; then
	echo "needs Debian's postgresql and redis-server: apt-get install -y postgresql redis-server" >&2
	exit 1
fi
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
	[ -f "$tmp/pg/data/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1 || true
	if [ -f "$tmp/redis.pid" ]; then
		pid=$(cat "$tmp/redis.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/pg" "$tmp/redis"
[ "$(id -u)" = 0 ] && chown postgres "$tmp/pg"
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -A trust --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
# No TCP listener, a unix socket in $tmp/pg. synchronous_commit=off: neither
# Redis (no AOF) nor JetStream (default sync interval) waits for the disk on
# each write either.
as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w -o "-c listen_addresses='' -c unix_socket_directories=$tmp/pg -c synchronous_commit=off -c max_connections=300" start >/dev/null
go build -o "$tmp/taskbench" ./tasks/cmd/taskbench
# Redis on 127.0.0.1 and a free port (another port if that one was taken
# meanwhile), data in $tmp/redis, no persistence.
for _ in 1 2 3 4 5; do
	port=$("$tmp/taskbench" -free-port)
	rm -f "$tmp/redis.pid"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/redis" --save '' --appendonly no \
		--daemonize yes --pidfile "$tmp/redis.pid" --logfile "$tmp/redis/log"
	for _ in $(seq 50); do
		redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break 2
		sleep 0.1
	done
done
redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null || { echo "redis-server did not start: $(tail -3 "$tmp/redis/log")" >&2; exit 1; }
export TASKBENCH_POSTGRES="unix:$tmp/pg/.s.PGSQL.5432" TASKBENCH_REDIS="tcp:127.0.0.1:$port"

echo "$(go version), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
echo "$("$pgbin/postgres" --version), $(redis-server --version | cut -d' ' -f1-3)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$tmp/taskbench" "$@"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
