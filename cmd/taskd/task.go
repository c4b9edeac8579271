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
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
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

// taskHandler serves GET /longrunningtask: a task of n steps, each a delay
// on the request token followed by a log line. It is safe for concurrent
// use.
type taskHandler struct {
	logger *slog.Logger
	// step, if set, runs at the end of each step; tests use it to fail or
	// panic.
	step func(ctx context.Context, i int) error
}

func (h *taskHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, fmt.Sprintf("method %s not allowed: use GET", r.Method), http.StatusMethodNotAllowed)
		return
	}
	n, interval, err := parseTaskParams(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	ctx := r.Context()
	tok, ok := cancelhttp.RequestToken(ctx)
	if !ok {
		// Not behind cancelhttp.Handler: link a token to the request
		// context instead.
		src := cancellation.New(ctx)
		defer src.Cancel()
		tok = src.Token()
	}
	log := h.logger.With(slog.String("request_id", cancelhttp.RequestID(ctx)))
	log.Info("Long-running task started.", "iterations", n, "interval", interval)

	done, err := h.run(tok, log, n, interval)
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
			attrs = append(attrs, slog.Duration("stop_latency", time.Since(at)))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "Long-running task cancelled.", attrs...)
		// Written even if the client is gone: net/http discards it then.
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
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err = fmt.Errorf("panic in step %d: %v\n%s", done+1, v, debug.Stack())
		}
	}()
	for i := 1; i <= n; i++ {
		if tok.IsCanceled() {
			return done, tok.Err()
		}
		if err := cancellation.Sleep(tok, interval); err != nil {
			return done, err
		}
		if h.step != nil {
			if err := h.step(tok, i); err != nil {
				return done, err
			}
		}
		log.Info(fmt.Sprintf("Iteration %d of %d completed.", i, n))
		done = i
	}
	return done, nil
}

// parseTaskParams parses iterations (an integer 1..100000, default 20) and
// interval (a Go duration 0..1h, default 1s) from a raw query string.
func parseTaskParams(rawQuery string) (n int, interval time.Duration, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed query string: %v", err)
	}
	n, interval = defaultIterations, defaultInterval
	if vs, ok := q["iterations"]; ok {
		v, err := strconv.Atoi(vs[0])
		if err != nil || v < 1 || v > maxIterations {
			return 0, 0, fmt.Errorf("invalid iterations %q: want an integer from 1 to %d", vs[0], maxIterations)
		}
		n = v
	}
	if vs, ok := q["interval"]; ok {
		d, err := time.ParseDuration(vs[0])
		if err != nil || d < 0 || d > maxInterval {
			return 0, 0, fmt.Errorf("invalid interval %q: want a Go duration from 0s to 1h (for example 500ms or 2s)", vs[0])
		}
		interval = d
	}
	return n, interval, nil
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}
