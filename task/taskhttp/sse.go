package taskhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/task"
)

// lastEventID parses the Last-Event-ID header (0 when absent); ok is false
// for a malformed one.
func lastEventID(r *http.Request) (uint64, bool) {
	s := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// stream is one Server-Sent Events response.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startStream writes and flushes the headers of an event stream.
func startStream(w http.ResponseWriter) (*stream, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: http.NewResponseController(w)}
	return s, s.rc.Flush()
}

// send writes one task event and flushes it.
func (s *stream) send(rev uint64, t *task.Task) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "event: task\nid: %d\ndata: %s\n\n", rev, b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// heartbeat writes a comment line and flushes it.
func (s *stream) heartbeat() error {
	if _, err := fmt.Fprint(s.w, ": heartbeat\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// streamCtx is the request's context, also canceled by CloseStreams.
func (a *API) streamCtx(r *http.Request) (context.Context, func()) {
	src := cancellation.New(r.Context(), a.streams.Token())
	return src.Token(), func() { src.Cancel() }
}

// pump sends events until ctx is done, the channel closes, or last says
// the stream is over.
func (a *API) pump(ctx context.Context, s *stream, events <-chan task.Event, last func(task.Event) bool) {
	hb := time.NewTicker(a.opts.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Task != nil {
				if s.send(ev.Rev, ev.Task) != nil {
					return
				}
			}
			if last(ev) {
				return
			}
		case <-hb.C:
			if s.heartbeat() != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (a *API) taskEvents(w http.ResponseWriter, r *http.Request) {
	after, ok := lastEventID(r)
	if !ok {
		writeProblem(w, r, http.StatusBadRequest, "invalid Last-Event-ID: send the id of the last event received")
		return
	}
	ctx, done := a.streamCtx(r)
	defer done()
	id := r.PathValue("id")
	cur, rev, err := a.r.Store().Get(ctx, id)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	if after >= rev && cur.State.Final() {
		// The client saw the final state: tell EventSource to stop.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// A new stream starts with the current state, then the changes after
	// it; a resumed one gets every change after Last-Event-ID (the watch
	// starts with the current state when it is newer).
	from := after
	if after == 0 {
		from = rev
	}
	events, err := a.r.Store().Watch(ctx, task.WatchOptions{ID: id, After: from})
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	s, err := startStream(w)
	if err != nil {
		return
	}
	if after == 0 && (s.send(rev, cur) != nil || cur.State.Final()) {
		return
	}
	a.pump(ctx, s, events, func(ev task.Event) bool {
		return ev.Deleted || ev.Task.State.Final()
	})
}

func (a *API) allEvents(w http.ResponseWriter, r *http.Request) {
	after, ok := lastEventID(r)
	if !ok {
		writeProblem(w, r, http.StatusBadRequest, "invalid Last-Event-ID: send the id of the last event received")
		return
	}
	ctx, done := a.streamCtx(r)
	defer done()
	events, err := a.r.Store().Watch(ctx, task.WatchOptions{After: after})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		a.storeError(w, r, err)
		return
	}
	s, err := startStream(w)
	if err != nil {
		return
	}
	a.pump(ctx, s, events, func(task.Event) bool { return false })
}
