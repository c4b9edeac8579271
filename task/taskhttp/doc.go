// Package taskhttp is the HTTP API of package task, as taskd serves it:
//
//	POST /tasks                 start a task: {"kind":…,"params":{…},"timeout":"10m"}
//	                            → 201 + Location; Idempotency-Key → 200 with the same task
//	GET  /tasks                 newest first; ?state= ?kind= ?page_size= (≤ 1000) ?page_token=
//	GET  /tasks/{id}            one task; 404 when unknown
//	POST /tasks/{id}/cancel     {"reason":…} (or no body) → 202; 409 for a finished task
//	GET  /tasks/{id}/events     Server-Sent Events: the task now, then each change, until final
//	GET  /events                Server-Sent Events: every change of every task
//	GET  /metrics               Prometheus text format (taskd_ metrics)
//	GET  /healthz, GET /readyz  liveness; readiness (the store answers)
//
// Rules:
//   - Every body is JSON; every error is an RFC 9457 problem
//     (application/problem+json) whose detail says what to change: 400 for
//     a bad kind, params, timeout, filter or page token, 413 for a body
//     over 1 MiB, 415 for a body that is not application/json.
//   - The task JSON is [task.Task]'s: times RFC 3339 UTC, durations in Go
//     syntax, fields that do not apply yet left out.
//   - Event streams send "event: task", "id: <revision>" and "data: <task
//     JSON>" per change, flush the response headers at once, send a
//     comment line as a heartbeat, and resume after the Last-Event-ID a
//     client sends. A task's stream ends after its final state (and
//     answers 204 No Content to a client that already saw it, so
//     EventSource stops reconnecting); /events sends changes only, so a
//     client lists first. [API.CloseStreams] ends every stream at once
//     (taskd calls it when it starts to shut down).
//   - Cancel requests record the reason, the node (via) and the request
//     id of the request that carried them.
//
// An [API] is safe for concurrent use; its handlers block only for the
// store and, for event streams, until the stream ends.
package taskhttp
