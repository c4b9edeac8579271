#!/usr/bin/env bash
# Cluster soak: the bulk cluster test of cmd/taskd at full size. Three taskd
# processes on one NATS server get TASKS tasks (default 1000) submitted to
# random nodes and CANCELS cancels (default 300) sent to random nodes, while
# one node is killed with SIGKILL and restarted and the NATS server is
# restarted once. It fails unless every canceled task ends canceled, every
# other task succeeds, none is lost and none ran on two nodes at once
# (judged from the nodes' step log lines).
#
#   bash bench/cluster-soak.sh            # 1000 tasks, 300 cancels
#   TASKS=5000 CANCELS=1500 bash bench/cluster-soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS="${TASKS:-1000}" CANCELS="${CANCELS:-300}"
CLUSTER_BULK_TASKS="$TASKS" CLUSTER_BULK_CANCELS="$CANCELS" \
	go test -run '^TestClusterBulk$' -count=1 -timeout 20m -v ./cmd/taskd |
	grep -E '^(--- |ok|FAIL|PASS)|cluster_test.go'
