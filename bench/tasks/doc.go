// Package tasks measures task systems side by side: River (Postgres,
// LISTEN/NOTIFY), asynq (Redis pub/sub) and this project's task package
// (NATS JetStream), each behind the same small driver interface ([Peer],
// [Node]) so that every measurement runs the same code against every
// system:
//
//   - throughput of no-op tasks submitted and completed on one node;
//   - the time from a cancel call to the running task's context (or token)
//     being canceled, in the same process and across processes (a worker
//     process separate from the canceling one);
//   - memory per queued and per running task;
//   - whether a cancel sent while the worker is cut off from its broker
//     (a TCP proxy closed and reopened) is obeyed once it reconnects, or lost.
//
// taskd's broker is a NATS server with JetStream that [Taskd.Setup]
// embeds in the harness's process. The peers' brokers are not started
// here: bench/tasks.sh starts a throwaway Postgres (unix socket) and Redis
// (127.0.0.1, a free port) with their data in a temporary directory and
// passes them in TASKBENCH_POSTGRES and TASKBENCH_REDIS ("unix:/path" or
// "tcp:host:port"). Without them the peer is unavailable ([ErrUnavailable])
// and the benchmarks skip it.
//
// Timestamps are CLOCK_MONOTONIC readings ([Mono]), which are comparable
// across the processes of one machine.
package tasks
