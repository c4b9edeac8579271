package task

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download"
)

// The limits and defaults of the longrunning kind's params (those of GET
// /longrunningtask).
const (
	DefaultIterations = 20
	MaxIterations     = 100000
	DefaultInterval   = time.Second
	MaxInterval       = time.Hour
)

// The longrunning kind's results.
const (
	CompletedMessage = "Long-running task completed successfully."
	CancelledMessage = "Long-running task cancelled successfully."
)

// LongRunningParams are the params of the longrunning kind:
// {"iterations":20,"interval":"1s"}.
type LongRunningParams struct {
	Iterations int      `json:"iterations"`
	Interval   Duration `json:"interval"`
}

// ParseLongRunning decodes and checks longrunning params, filling in the
// defaults; the error says what to change. It never blocks.
func ParseLongRunning(params json.RawMessage) (LongRunningParams, error) {
	var p struct {
		Iterations *int      `json:"iterations"`
		Interval   *Duration `json:"interval"`
	}
	if len(params) > 0 {
		if err := strictUnmarshal(params, &p); err != nil {
			return LongRunningParams{}, err
		}
	}
	out := LongRunningParams{Iterations: DefaultIterations, Interval: Duration(DefaultInterval)}
	if p.Iterations != nil {
		if *p.Iterations < 1 || *p.Iterations > MaxIterations {
			return out, fmt.Errorf("invalid iterations %d: want an integer from 1 to %d", *p.Iterations, MaxIterations)
		}
		out.Iterations = *p.Iterations
	}
	if p.Interval != nil {
		if *p.Interval < 0 || time.Duration(*p.Interval) > MaxInterval {
			return out, fmt.Errorf("invalid interval %v: want a Go duration from 0s to 1h (for example 500ms or 2s)", *p.Interval)
		}
		out.Interval = *p.Interval
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s must be a %s, not a JSON %s", te.Field, jsonType(te.Type.String()), te.Value)
		}
		return fmt.Errorf("params must be a JSON object: %v", err)
	}
	return nil
}

func jsonType(goType string) string {
	switch goType {
	case "int", "int64", "*int":
		return "number"
	}
	return "string"
}

// LongRunning is the longrunning kind: params {"iterations":n,
// "interval":"d"}; n steps, each a [cancellation.Sleep] of d on the task's
// token and a [Run.Check] (so no step runs after the lease ended), then
// progress (i of n, "Iteration i of n completed.") and that
// message as a log line with the attribute task=<id>. Its result is
// CompletedMessage.
func LongRunning() Kind {
	return Kind{
		Name: "longrunning",
		Check: func(params json.RawMessage) (json.RawMessage, error) {
			p, err := ParseLongRunning(params)
			if err != nil {
				return nil, err
			}
			return json.Marshal(p)
		},
		Run: func(tok cancellation.Token, run *Run) (string, error) {
			p, err := ParseLongRunning(run.task.Params)
			if err != nil {
				return "", err
			}
			n := int64(p.Iterations)
			for i := int64(1); i <= n; i++ {
				if err := cancellation.Sleep(tok, time.Duration(p.Interval)); err != nil {
					return "", err
				}
				if err := run.Check(); err != nil {
					return "", err
				}
				msg := fmt.Sprintf("Iteration %d of %d completed.", i, n)
				run.Logger().Info(msg)
				run.Progress(i, n, msg)
			}
			return CompletedMessage, nil
		},
	}
}

// DownloadParams are the params of the download kind.
type DownloadParams struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256,omitempty"` // hex
}

// Download is the download kind: params {"url":"https://…",
// "sha256":"<hex>"}; package download fetches url into dir/<task id>/,
// reporting progress in bytes. A canceled download keeps its .part, and
// the task's next attempt resumes it. client may be nil
// (http.DefaultClient).
func Download(dir string, client *http.Client) Kind {
	parse := func(params json.RawMessage) (DownloadParams, []byte, error) {
		var p DownloadParams
		if err := strictUnmarshal(params, &p); err != nil {
			return p, nil, err
		}
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return p, nil, fmt.Errorf("invalid url %q: want an absolute http or https URL", p.URL)
		}
		var sum []byte
		if p.SHA256 != "" {
			if sum, err = hex.DecodeString(p.SHA256); err != nil || len(sum) != 32 {
				return p, nil, fmt.Errorf("invalid sha256 %q: want 64 hex digits", p.SHA256)
			}
		}
		return p, sum, nil
	}
	return Kind{
		Name: "download",
		Check: func(params json.RawMessage) (json.RawMessage, error) {
			p, _, err := parse(params)
			if err != nil {
				return nil, err
			}
			return json.Marshal(p)
		},
		Run: func(tok cancellation.Token, run *Run) (string, error) {
			p, sum, err := parse(run.task.Params)
			if err != nil {
				return "", err
			}
			into := filepath.Join(dir, run.ID())
			if err := os.MkdirAll(into, 0o755); err != nil {
				return "", err
			}
			c := download.Client{HTTPClient: client}
			res, err := c.Do(tok, &download.Request{
				URL: p.URL, Dir: into, SHA256: sum,
				Progress: func(e download.Event) {
					if e.Kind == download.Started || e.Kind == download.Received {
						run.Progress(e.Written, max(e.Total, 0), "")
					}
				},
			})
			if err != nil {
				return "", err
			}
			run.Progress(res.Size, res.Size, "")
			return fmt.Sprintf("downloaded %s (%d bytes)", res.Path, res.Size), nil
		},
	}
}
