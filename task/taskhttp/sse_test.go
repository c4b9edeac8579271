package taskhttp_test

import (
	"strconv"
	"testing"

	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
)

func TestTaskEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tk := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"gate"}`).task(t)
	recv(t, e.gate.started)
	s := openSSE(t, e.url+"/tasks/"+tk.ID+"/events", "")
	if ct := s.resp.Header.Get("Content-Type"); s.resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %q", s.resp.StatusCode, ct)
	}
	first, cur, ok := s.next(t)
	if !ok || cur.ID != tk.ID || (cur.State != task.Running && cur.State != task.Queued) {
		t.Fatalf("first event %+v", cur)
	}
	close(e.gate.release)
	var last *task.Task
	var lastID uint64
	prev, _ := strconv.ParseUint(first.id, 10, 64)
	for {
		ev, tk, ok := s.next(t)
		if !ok {
			break
		}
		id, err := strconv.ParseUint(ev.id, 10, 64)
		if err != nil || id <= prev {
			t.Fatalf("event id %q after %d", ev.id, prev)
		}
		prev, last, lastID = id, tk, id
	}
	if last == nil || last.State != task.Succeeded {
		t.Fatalf("stream ended at %+v, want the final state", last)
	}
	// Resume after the first event: the changes since, ending with the
	// final state.
	r := openSSE(t, e.url+"/tasks/"+tk.ID+"/events", first.id)
	ev, got, ok := r.next(t)
	if !ok || got.State != task.Succeeded || ev.id != strconv.FormatUint(lastID, 10) {
		t.Fatalf("resumed stream starts with %+v (id %s), want the final state at %d", got, ev.id, lastID)
	}
	if _, _, ok := r.next(t); ok {
		t.Fatal("resumed stream did not end after the final state")
	}
	// Resume after the final state: 204, EventSource stops reconnecting.
	done := openSSE(t, e.url+"/tasks/"+tk.ID+"/events", strconv.FormatUint(lastID, 10))
	if done.resp.StatusCode != 204 {
		t.Fatalf("resume after the final state: %d", done.resp.StatusCode)
	}
	wantProblem(t, do(t, "GET", e.url+"/tasks/"+task.NewID()+"/events", "", ""), 404, "no task")
	wantProblem(t, do(t, "GET", e.url+"/tasks/"+tk.ID+"/events", "", "", "Last-Event-ID", "x"), 400, "Last-Event-ID")
}

func TestAllEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The headers arrive before any change (openSSE returns on headers).
	s := openSSE(t, e.url+"/events", "")
	if ct := s.resp.Header.Get("Content-Type"); s.resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %q", s.resp.StatusCode, ct)
	}
	// Heartbeats while idle.
	select {
	case ev := <-s.events:
		if !ev.comment {
			t.Fatalf("first thing on an idle stream: %+v, want a heartbeat comment", ev)
		}
	case <-testlog.DeadlineContext(t).Done():
		t.Fatal("no heartbeat")
	}
	tk := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"longrunning","params":{"iterations":1,"interval":"0s"}}`).task(t)
	var firstID string
	for {
		ev, got, ok := s.next(t)
		if !ok {
			t.Fatal("stream ended")
		}
		if got.ID != tk.ID {
			continue
		}
		if firstID == "" {
			firstID = ev.id
		}
		if got.State == task.Succeeded {
			break
		}
	}
	// A client that saw only the first event resumes and gets the rest.
	r := openSSE(t, e.url+"/events", firstID)
	for {
		ev, got, ok := r.next(t)
		if !ok {
			t.Fatal("resumed stream ended")
		}
		if ev.id == firstID {
			t.Fatal("resumed stream repeats the Last-Event-ID's event")
		}
		if got.ID == tk.ID && got.State == task.Succeeded {
			break
		}
	}
	// CloseStreams ends the streams.
	e.api.CloseStreams()
	for {
		if _, _, ok := s.next(t); !ok {
			break
		}
	}
}
