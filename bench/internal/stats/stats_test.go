package stats_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/bench/internal/stats"
)

func TestMedian(t *testing.T) {
	v := []float64{5, 1, 3, 2}
	if got := stats.Median(v); got != 2.5 {
		t.Errorf("Median(5 1 3 2) = %v, want 2.5", got)
	}
	if v[0] != 5 {
		t.Errorf("Median sorted its argument: %v", v)
	}
	if got := stats.Median([]time.Duration{3, 1, 2}); got != 2 {
		t.Errorf("Median(3 1 2 ns) = %v, want 2ns", got)
	}
	if got := stats.Median[float64](nil); got != 0 {
		t.Errorf("Median(nil) = %v", got)
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkGo/limit=8-2   	  100	  250.5 scope-ns/goroutine	  3 allocs/op
BenchmarkNewCancel/impl=context-2 	 1000	 140 ns/op	 96 B/op	 2 allocs/op
BenchmarkGo/limit=8-2   	  100	  260 scope-ns/goroutine	  3 allocs/op
PASS
`
	got, err := stats.ParseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := stats.Samples{
		"Go/limit=8":             {"scope-ns/goroutine": {250.5, 260}, "allocs/op": {3, 3}},
		"NewCancel/impl=context": {"ns/op": {140}, "B/op": {96}, "allocs/op": {2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseBench = %v, want %v", got, want)
	}
}
