// Package dashboard is taskd's web page: one HTML page, one script and one
// style sheet, embedded in the binary and served without a build step.
//
// The page lists tasks with GET /tasks (newest first, one page at a time),
// then applies every change it receives from GET /events (Server-Sent
// Events; the browser resumes with Last-Event-ID after a reconnect). It
// starts tasks with POST /tasks and cancels them with POST
// /tasks/{id}/cancel. It never builds markup from server strings: task data
// reaches the page through textContent and attributes only.
//
// Rules for the server that mounts it:
//   - Mount [Handler] on "GET /" of the same origin as the task API; the
//     page uses absolute paths (/tasks, /events, /assets/…).
//   - The page's content security policy allows scripts, styles and
//     connections from its own origin only.
//
// Stable hooks for tests and scripts: each task row is an element with
// data-task-id="<id>" holding a [data-field="state"] element with the
// state's name and a <progress> element, and, while the task is queued or
// running, a button[data-action="cancel"] beside an input[name="reason"].
// The start form is form#start-task; submitted untouched it starts the
// seed's task (kind longrunning, 20 iterations of 1s).
package dashboard
