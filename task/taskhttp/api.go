package taskhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/task"
)

// MaxBodyBytes is the largest request body the API reads (1 MiB); a larger
// one is answered 413.
const MaxBodyBytes = 1 << 20

// DefaultHeartbeat is how often an idle event stream sends a comment line.
const DefaultHeartbeat = 15 * time.Second

// Options configures an [API]. The zero value of each field means its
// default.
type Options struct {
	// Metrics, if set, receives the API's measurements (its HTTP requests
	// and the cancellations it makes); serve them with Metrics.Handler.
	Metrics *Metrics
	// Heartbeat is the interval of an idle event stream's comment lines.
	// Default DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger receives warnings (a store that fails). Default
	// slog.Default().
	Logger *slog.Logger
}

// API serves the task API of a [task.Runner]. Make one with [New] and
// mount [API.Register] on a mux. It is safe for concurrent use.
type API struct {
	r       *task.Runner
	opts    Options
	streams *cancellation.Source // canceled by CloseStreams
}

// New returns the API of r. It starts nothing.
func New(r *task.Runner, opts Options) *API {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{r: r, opts: opts, streams: cancellation.New()}
}

// errStreamsClosed is the cause with which CloseStreams ends streams.
var errStreamsClosed = errors.New("event streams closed: server shutting down")

// CloseStreams ends every event stream now and makes new ones end at once
// (after their headers). It never blocks and is idempotent.
func (a *API) CloseStreams() { a.streams.CancelCause(errStreamsClosed) }

// Register adds the API's routes to mux: the task routes, /events,
// /healthz and /readyz, and /metrics when Options.Metrics is set. Each
// route is wrapped to count its requests when metrics are on.
func (a *API) Register(mux *http.ServeMux) {
	routes := []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"POST /tasks", a.create},
		{"GET /tasks", a.list},
		{"GET /tasks/{id}", a.get},
		{"POST /tasks/{id}/cancel", a.cancel},
		{"GET /tasks/{id}/events", a.taskEvents},
		{"GET /events", a.allEvents},
		{"GET /healthz", a.healthz},
		{"GET /readyz", a.readyz},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, a.opts.Metrics.instrument(rt.pattern, rt.h))
	}
	if a.opts.Metrics != nil {
		mux.Handle("GET /metrics", a.opts.Metrics.instrument("GET /metrics", a.opts.Metrics.Handler()))
	}
}

// createRequest is the body of POST /tasks.
type createRequest struct {
	Kind    string          `json:"kind"`
	Params  json.RawMessage `json:"params"`
	Timeout *task.Duration  `json:"timeout"`
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	var req createRequest
	if err := decodeStrict(body, &req); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid task: "+err.Error()+`; send {"kind":"longrunning","params":{"iterations":20,"interval":"1s"},"timeout":"10m"}`)
		return
	}
	if req.Kind == "" {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf(`missing "kind": one of %v`, a.r.Kinds().Names()))
		return
	}
	spec := task.Spec{Kind: req.Kind, Params: req.Params, IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if req.Timeout != nil {
		if *req.Timeout <= 0 {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("invalid timeout %v: want a positive Go duration such as \"10m\", or leave it out", *req.Timeout))
			return
		}
		spec.Timeout = time.Duration(*req.Timeout)
	}
	if len(spec.IdempotencyKey) > 256 {
		writeProblem(w, r, http.StatusBadRequest, "Idempotency-Key is longer than 256 bytes")
		return
	}
	t, created, err := a.r.Submit(r.Context(), spec)
	switch {
	case errors.Is(err, task.ErrUnknownKind), errors.Is(err, task.ErrInvalid):
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, task.ErrClosed):
		writeProblem(w, r, http.StatusServiceUnavailable, "this node is shutting down: send the task to another node or retry later")
		return
	case err != nil:
		a.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/tasks/"+t.ID)
	if !created {
		writeJSON(w, http.StatusOK, t)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// listResponse is the body of GET /tasks.
type listResponse struct {
	Tasks         []*task.Task `json:"tasks"`
	NextPageToken string       `json:"next_page_token"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := task.ListOptions{State: task.State(q.Get("state")), Kind: q.Get("kind"), PageToken: q.Get("page_token")}
	if opts.State != "" && !opts.State.Valid() {
		writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("invalid state %q: want one of %v", opts.State, task.States))
		return
	}
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeProblem(w, r, http.StatusBadRequest, fmt.Sprintf("invalid page_size %q: want an integer from 1 to %d", s, task.MaxPageSize))
			return
		}
		opts.PageSize = n // List caps it at MaxPageSize
	}
	page, err := a.r.Store().List(r.Context(), opts)
	if errors.Is(err, task.ErrInvalid) {
		writeProblem(w, r, http.StatusBadRequest, "invalid page_token: pass the next_page_token of the previous page unchanged")
		return
	}
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	if page.Tasks == nil {
		page.Tasks = []*task.Task{}
	}
	writeJSON(w, http.StatusOK, listResponse{Tasks: page.Tasks, NextPageToken: page.NextPageToken})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	t, err := a.r.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// cancelRequest is the optional body of POST /tasks/{id}/cancel.
type cancelRequest struct {
	Reason string `json:"reason"`
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	var req cancelRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeProblem(w, r, http.StatusBadRequest, "invalid cancel request: "+err.Error()+`; send {"reason":"why"} or no body`)
			return
		}
	}
	if len(req.Reason) > 1024 {
		writeProblem(w, r, http.StatusBadRequest, "reason is longer than 1024 bytes")
		return
	}
	before, _ := a.r.Get(r.Context(), r.PathValue("id"))
	t, err := a.r.Cancel(r.Context(), r.PathValue("id"), task.CancelRequest{
		Reason: req.Reason, RequestID: cancelhttp.RequestID(r.Context()),
	})
	switch {
	case errors.Is(err, task.ErrFinished):
		writeJSON(w, http.StatusConflict, t)
		return
	case err != nil:
		a.storeError(w, r, err)
		return
	}
	if before != nil && before.State == task.Queued && t.State == task.Canceled {
		a.opts.Metrics.canceledQueued()
	}
	writeJSON(w, http.StatusAccepted, t)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.r.Store().Ping(ctx); err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "the task store is not reachable: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, s+"\n")
}

// storeError answers for an error of the runner or store.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, task.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, fmt.Sprintf("no task %q: it never existed or was deleted after the retention period", r.PathValue("id")))
	case r.Context().Err() != nil:
		// The client is gone (or the server is stopping): nobody reads this.
		writeProblem(w, r, http.StatusServiceUnavailable, "request canceled")
	default:
		a.opts.Logger.Warn("task store", "error", err, "path", r.URL.Path)
		writeProblem(w, r, http.StatusServiceUnavailable, "the task store did not answer; retry later")
	}
}

// readBody reads a JSON body of at most MaxBodyBytes, answering 413 or 415
// itself (then ok is false). With optional, an empty body of any type is
// accepted.
func readBody(w http.ResponseWriter, r *http.Request, optional bool) ([]byte, bool) {
	ct := r.Header.Get("Content-Type")
	if !(optional && ct == "" && r.ContentLength <= 0) {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
			if !optional || r.ContentLength != 0 {
				writeProblem(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported: send the body as application/json", ct))
				return nil, false
			}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes: send params of at most 1 MiB", MaxBodyBytes))
		return nil, false
	case err != nil:
		writeProblem(w, r, http.StatusBadRequest, "could not read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// decodeStrict decodes one JSON object, rejecting unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return errors.New("empty body")
		}
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}
