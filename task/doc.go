// Package task runs long-running work that outlives the request that
// started it: tasks with ids, states, progress and a cancel with a reason,
// run by a [Runner] under a cancellation Source and recorded in a [Store]
// (NATS JetStream in package task/natsstore).
//
// Rules:
//
//   - Ids ([NewID]) are unique, URL-safe and sort as strings by creation
//     time.
//   - States move queued → running → succeeded | failed | canceled, with
//     canceling between running and canceled while the function has been
//     asked to stop and has not returned; a task canceled while queued goes
//     straight to canceled and never runs; a task handed back (drain, lost
//     lease) goes from running to queued and runs again with the next
//     attempt. Every change is a compare-and-set on the record's revision:
//     no lost update, no state going backwards.
//   - A cancel request ([Runner.Cancel]) is written to the record (reason,
//     time, the node and request it came through) and reaches the running
//     task's token as a [*CancelError] cause: at once on the node that
//     received it, through a watch of the store on any other node.
//   - A task's timeout is a timer of its Source ([*TimeoutError] cause;
//     the task fails).
//   - A running task holds a lease, renewed every third of its duration by
//     a write of the record; each renewal re-arms the lease Source's timer
//     (CancelAfterCause), so a node that cannot renew cancels the task
//     itself with [ErrLeaseLost] before any other node can see the lease
//     as ended. The task is then handed back (failed with [ErrNodeLost]
//     when that was its last attempt). [Run.Check] also compares
//     the lease with the clock, so a step after a freeze (SIGSTOP) past
//     the lease does not run even before the timer fires.
//   - Every runner follows the leases of tasks running elsewhere on its
//     own monotonic clock (a lease ended when its record has not changed
//     for the lease's duration since this runner saw it; wall clocks of
//     different machines are never compared) and takes over a task whose
//     lease ended with a compare-and-set on the revision it saw: a task
//     whose cancel was requested ends canceled, a request-scoped one or
//     one at its max_attempts fails with [ErrNodeLost], any other goes
//     back to the queue and runs again with the next attempt.
//   - No queued task is left with nothing to run it: a node that stops
//     between writing a queued record (a new task, or one handed back) and
//     putting its id on the work queue leaves an orphan, and every runner
//     queues such a task again once the queue has been empty for two
//     leases while its record stayed unchanged ([Store.QueueLen]).
//   - Progress ([Run.Progress]) is coalesced: at most one write per
//     progress interval (100 ms) per task however often it is reported,
//     and the final record always has the last value.
//   - [Runner.Shutdown] stops taking work, gives running tasks a grace
//     period, then cancels them with [ErrShuttingDown] and hands them back
//     to the queue.
//   - Kinds are registered by Go code in a [Registry]: a name, a params
//     check and a [Func] of a token and a [*Run] handle. [LongRunning] and
//     [Download] are built in.
//
// Everything exported is safe for concurrent use unless its doc says
// otherwise; each method's doc says whether it blocks.
package task
