package faultnet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-cancellation/cancellation/internal/testlog"
)

// Run is one run of a task on one node, as its log lines show: from the
// "task started" line (or the first step, if the start line is missing) to
// the last step line.
type Run struct {
	Task    string
	Node    string
	Attempt int
	Start   time.Time
	End     time.Time
	Steps   int
}

func (r Run) String() string {
	return fmt.Sprintf("%s attempt %d on %s: %d steps from %s to %s", r.Task, r.Attempt, r.Node, r.Steps,
		r.Start.Format("15:04:05.000000"), r.End.Format("15:04:05.000000"))
}

// Runs groups log records of task runners (JSON lines with the attributes
// task, node and attempt on every line of a task) into the runs of each
// task: "task started" lines open a run, "Iteration i of n completed."
// lines are its steps. Records without a task or time are ignored.
func Runs(records []testlog.Record) map[string][]Run {
	type key struct {
		task, node string
		attempt    int
	}
	runs := make(map[key]*Run)
	for _, rec := range records {
		id, node := rec.Str("task"), rec.Str("node")
		msg := rec.Str("msg")
		isStep := strings.HasPrefix(msg, "Iteration ")
		if id == "" || node == "" || (!isStep && msg != "task started") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, rec.Str("time"))
		if err != nil {
			continue
		}
		k := key{id, node, int(rec.Num("attempt"))}
		r := runs[k]
		if r == nil {
			r = &Run{Task: id, Node: node, Attempt: k.attempt, Start: at, End: at}
			runs[k] = r
		}
		if at.Before(r.Start) {
			r.Start = at
		}
		if at.After(r.End) {
			r.End = at
		}
		if isStep {
			r.Steps++
		}
	}
	out := make(map[string][]Run)
	for _, r := range runs {
		out[r.Task] = append(out[r.Task], *r)
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
	}
	return out
}

// Overlaps returns, for every task that ran twice at once, a line naming
// the two runs whose time spans overlap. Empty means no task ran on two
// nodes (or twice on one) at the same time.
func Overlaps(runs map[string][]Run) []string {
	var out []string
	for _, rs := range runs {
		for i := 1; i < len(rs); i++ {
			for j := 0; j < i; j++ {
				if rs[i].Start.Before(rs[j].End) {
					out = append(out, fmt.Sprintf("overlap: %v and %v", rs[j], rs[i]))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
