package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/task"
)

// The seed endpoint's parameters and answers.
const (
	defaultIterations = 20
	maxIterations     = 100000
	defaultInterval   = time.Second
	maxInterval       = time.Hour

	completedMessage = "Long-running task completed successfully."
	cancelledMessage = "Long-running task cancelled successfully."
	internalMessage  = "Internal error."
)

// Step log limit: at most stepLogBurst "Iteration i of n completed." lines
// at once and stepLogRate per second after that, per request; the steps in
// between are summarized in one line.
const (
	stepLogBurst = 10
	stepLogRate  = 10
)

// maxEchoed bounds how much of a bad parameter a 400 answer quotes.
const maxEchoed = 64

// errMaxTaskDuration is the cause of a task canceled by -max-task-duration.
var errMaxTaskDuration = errors.New("task ran longer than -max-task-duration")

// taskHandler serves GET (and HEAD) /longrunningtask: a task of n steps,
// each a delay on the request token followed by a log line. It is safe for
// concurrent use.
type taskHandler struct {
	logger *slog.Logger
	// maxDuration caps iterations × interval (400 up front) and the task's
	// run time (canceled with errMaxTaskDuration); 0: no cap.
	maxDuration time.Duration
	// step, if set, runs at the end of each step; tests use it to fail or
	// panic.
	step func(ctx context.Context, i int) error
	// tasks, if set, runs each request as a request-scoped task (see
	// runAsTask).
	tasks *task.Runner
}

func (h *taskHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		method := r.Method // a token: no quoting needed unless it is cut
		if len(method) > maxEchoed {
			method = quote(method)
		}
		writeText(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", method))
		return
	}
	n, interval, err := parseTaskParams(r.URL.RawQuery)
	if err == nil && h.maxDuration > 0 && time.Duration(n)*interval > h.maxDuration {
		err = fmt.Errorf("task too long: %d iterations of %v is %v, more than the server allows (%v, -max-task-duration)",
			n, interval, time.Duration(n)*interval, h.maxDuration)
	}
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}

	ctx := r.Context()
	tok, ok := cancelhttp.RequestToken(ctx)
	if ok {
		if h.maxDuration > 0 {
			cancelhttp.SetRequestDeadline(ctx, time.Now().Add(h.maxDuration), errMaxTaskDuration)
		}
	} else {
		// Not behind cancelhttp.Handler: a token of the task's own, linked
		// to the request context and to the task's time limit.
		src := cancellation.New(ctx)
		defer src.Cancel()
		if h.maxDuration > 0 {
			src.CancelAfterCause(h.maxDuration, errMaxTaskDuration)
		}
		tok = src.Token()
	}
	log := h.logger.With(slog.String("request_id", cancelhttp.RequestID(ctx)))
	log.Info("Long-running task started.", "iterations", n, "interval", interval.String())

	tok, done, err := h.runAsTask(tok, log, n, interval)
	switch {
	case err == nil:
		writeText(w, http.StatusOK, completedMessage)
	case tok.IsCanceled() && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		attrs := []slog.Attr{
			slog.Any("cause", tok.Cause()),
			slog.Int("step", done+1),
			slog.Int("completed", done),
			slog.Int("iterations", n),
		}
		if at, ok := cancelhttp.CanceledAt(ctx); ok {
			attrs = append(attrs, slog.Float64("stop_latency_ms", float64(time.Since(at).Microseconds())/1000))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "Long-running task cancelled.", attrs...)
		// Written even when the client is gone: net/http discards it then.
		writeText(w, http.StatusOK, cancelledMessage)
	default:
		log.Error("Long-running task failed.", "error", err, "completed", done, "iterations", n)
		writeText(w, http.StatusInternalServerError, internalMessage)
	}
}

// run runs the n steps and returns how many completed. It returns the
// token's Err as soon as the token is canceled, the error of a failed step,
// or a panic of a step as an error.
func (h *taskHandler) run(tok cancellation.Token, log *slog.Logger, n int, interval time.Duration) (done int, err error) {
	return h.runTask(tok, log, nil, n, interval)
}

// runTask is run for the steps of task run (nil: not a task): each step
// also reports its progress to run, and each step line names the task.
func (h *taskHandler) runTask(tok cancellation.Token, log *slog.Logger, run *task.Run, n int, interval time.Duration) (done int, err error) {
	steps := stepLog{log: log, n: n}
	if run != nil {
		steps.task = run.ID()
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err = fmt.Errorf("panic in step %d: %v\n%s", done+1, v, debug.Stack())
		}
		steps.flush()
	}()
	for i := 1; i <= n; i++ {
		if tok.IsCanceled() {
			return done, tok.Err()
		}
		if err := cancellation.Sleep(tok, interval); err != nil {
			return done, err
		}
		msg := ""
		if run != nil {
			msg = stepMessage(i, n)
			run.Progress(int64(i), int64(n), msg)
		}
		if h.step != nil {
			if err := h.step(tok, i); err != nil {
				return done, err
			}
		}
		steps.completed(i, msg)
		done = i
	}
	return done, nil
}

// stepLog writes the "Iteration i of n completed." lines of one task, at
// most stepLogBurst at once and stepLogRate a second after that (a token
// bucket). Steps over the limit are counted, and the next line that may be
// written (or flush) summarizes them: "Iterations 11 to 250 of 1000
// completed." with lines_summarized=239. Used by one goroutine.
type stepLog struct {
	log     *slog.Logger
	task    string // the task id for the lines' task attribute; "": none
	n       int
	tokens  float64
	last    time.Time // of the last refill; zero before the first step
	skipped int       // steps completed and not logged yet
	first   int       // the first of them
	lastI   int       // the last of them
}

// stepMessage is the line of step i of n.
func stepMessage(i, n int) string {
	// Appended on the stack, not fmt.Sprintf: one allocation, the string.
	var buf [48]byte
	b := append(buf[:0], "Iteration "...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, " of "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, " completed."...)
	return string(b)
}

// completed counts step i; msg is its line if already made ("": made
// here when needed).
func (s *stepLog) completed(i int, msg string) {
	now := time.Now()
	if s.last.IsZero() {
		s.tokens = stepLogBurst
	} else {
		s.tokens = min(stepLogBurst, s.tokens+now.Sub(s.last).Seconds()*stepLogRate)
	}
	s.last = now
	if s.tokens < 1 {
		if s.skipped == 0 {
			s.first = i
		}
		s.skipped++
		s.lastI = i
		return
	}
	s.tokens--
	if s.skipped > 0 {
		s.first, s.lastI = min(s.first, i), i
		s.skipped++
		s.flush()
		return
	}
	if msg == "" {
		msg = stepMessage(i, s.n)
	}
	if s.task == "" {
		s.log.Info(msg)
		return
	}
	// The task attribute added per line, not with log.With: a short
	// request then costs no logger of its own.
	s.log.LogAttrs(context.Background(), slog.LevelInfo, msg, slog.String("task", s.task))
}

// flush writes the summary of the steps not logged yet, if any.
func (s *stepLog) flush() {
	if s.skipped == 0 {
		return
	}
	attrs := make([]slog.Attr, 0, 3)
	if s.task != "" {
		attrs = append(attrs, slog.String("task", s.task))
	}
	attrs = append(attrs, slog.Int("lines_summarized", s.skipped),
		slog.String("note", fmt.Sprintf("step lines are limited to %d a second per task", stepLogRate)))
	s.log.LogAttrs(context.Background(), slog.LevelInfo, fmt.Sprintf("Iterations %d to %d of %d completed.", s.first, s.lastI, s.n), attrs...)
	s.skipped = 0
}

// parseTaskParams parses iterations (an integer 1..100000, default 20) and
// interval (a Go duration 0..1h, default 1s) from a raw query string. Its
// errors quote at most maxEchoed bytes of a bad value.
func parseTaskParams(rawQuery string) (n int, interval time.Duration, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		var ee url.EscapeError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("malformed query string: invalid escape %s", quote(string(ee)))
		}
		return 0, 0, errors.New("malformed query string")
	}
	n, interval = defaultIterations, defaultInterval
	if vs, ok := q["iterations"]; ok {
		v, err := strconv.Atoi(vs[0])
		if err != nil || v < 1 || v > maxIterations {
			return 0, 0, fmt.Errorf("invalid iterations %s: want an integer from 1 to %d", quote(vs[0]), maxIterations)
		}
		n = v
	}
	if vs, ok := q["interval"]; ok {
		d, err := time.ParseDuration(vs[0])
		if err != nil || d < 0 || d > maxInterval {
			return 0, 0, fmt.Errorf("invalid interval %s: want a Go duration from 0s to 1h (for example 500ms or 2s)", quote(vs[0]))
		}
		interval = d
	}
	return n, interval, nil
}

// quote quotes s like %q, shortened to its first maxEchoed bytes (and the
// total length) when it is longer.
func quote(s string) string {
	if len(s) <= maxEchoed {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:maxEchoed], len(s))
}

// writeText writes msg and a newline as a text/plain answer.
func writeText(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// limitInflight serves at most n requests at once (n <= 0: no limit) and
// answers the others 503 Service Unavailable with Retry-After. The returned
// handler is safe for concurrent use.
func limitInflight(next http.Handler, n int) http.Handler {
	if n <= 0 {
		return next
	}
	var inflight atomic.Int64
	busy := fmt.Sprintf("Server busy: %d requests in flight, the most it serves at once (-max-inflight). Retry later.", n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight.Add(1) > int64(n) {
			inflight.Add(-1)
			w.Header().Set("Retry-After", retryAfter)
			writeText(w, http.StatusServiceUnavailable, busy)
			return
		}
		defer inflight.Add(-1)
		next.ServeHTTP(w, r)
	})
}
