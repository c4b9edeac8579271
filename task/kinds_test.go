package task_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/task"
)

// FuzzParseLongRunning: any input is either refused or yields params in
// range whose normalized JSON parses back to the same params.
func FuzzParseLongRunning(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `{"iterations":20,"interval":"1s"}`, `{"iterations":0}`,
		`{"iterations":100001}`, `{"interval":"2h"}`, `{"interval":"-1s"}`, `{"interval":1000}`,
		`{"iterations":"5"}`, `{"iterations":1.5}`, `[1,2]`, `{"iterations":3,"interval":"1h0m0s"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := task.ParseLongRunning(b)
		if err != nil {
			return
		}
		if p.Iterations < 1 || p.Iterations > task.MaxIterations || p.Interval < 0 || time.Duration(p.Interval) > task.MaxInterval {
			t.Fatalf("%q parsed to out-of-range %+v", b, p)
		}
		norm, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := task.ParseLongRunning(norm)
		if err != nil || again != p {
			t.Fatalf("%q → %s → %+v, %v; want %+v", b, norm, again, err, p)
		}
	})
}
