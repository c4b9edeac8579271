package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/faultnet"
	"github.com/go-cancellation/cancellation/internal/natstest"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats-server/v2/server"
)

// The cluster tests run taskd binaries as processes (-nats, -node, -lease)
// on one NATS server that the test process runs and can restart on the
// same port with the same data, kill them with SIGKILL, freeze them with
// SIGSTOP and drain them with SIGTERM, and judge from the nodes' step log
// lines (task, node and attempt on each) that no task ran twice at once.

// clusterLease is the nodes' -lease: short, so that takeovers are quick,
// and long enough for a loaded machine to renew in time.
const clusterLease = time.Second

// natsServer is a NATS server with JetStream in the test process.
type natsServer struct {
	dir  string
	port int
	ns   *server.Server
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	// A port that no other test's connection can take while it restarts.
	n := &natsServer{dir: t.TempDir(), port: faultnet.StablePort(t)}
	n.start(t)
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *natsServer) start(t *testing.T) {
	t.Helper()
	ns, err := natsstore.RunServer(natsstore.ServerOptions{Dir: n.dir, Port: n.port})
	if err != nil {
		t.Fatal(err)
	}
	n.ns, n.port = ns, ns.Addr().(*net.TCPAddr).Port
}

func (n *natsServer) stop() {
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
		n.ns = nil
	}
}

// restart stops the server and starts it again on the same port and data.
func (n *natsServer) restart(t *testing.T) {
	t.Helper()
	n.stop()
	n.start(t)
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// observer opens a store on the server for the test to watch tasks with.
func (n *natsServer) observer(t *testing.T) *natsstore.Store {
	t.Helper()
	nc, err := natsstore.Connect(n.url(), "test observer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := natsstore.New(t.Context(), nc, natsstore.Options{RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runningBinary is a started taskd with its log and base URL.
type runningBinary struct {
	name string
	cmd  *exec.Cmd
	logs *testlog.Sink
	url  string
	args []string // what it was started with, for a restart (embedded cluster nodes)
}

// startNode starts taskd as node name on the NATS at url.
func startNode(t *testing.T, url, name string, extra ...string) *runningBinary {
	t.Helper()
	args := append([]string{"-nats", url, "-node", name, "-lease", clusterLease.String(), "-concurrency", "16"}, extra...)
	cmd, logs, base := runBinary(t, args...)
	return &runningBinary{name: name, cmd: cmd, logs: logs, url: base}
}

// signal sends sig to the node's process.
func (b *runningBinary) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", b.name, sig, err)
	}
}

// kill kills the node with SIGKILL and waits for it to be gone.
func (b *runningBinary) kill(t *testing.T) {
	t.Helper()
	b.signal(t, syscall.SIGKILL)
	waitExit(t, b.cmd)
}

// submit POSTs a longrunning task of n steps of d to the node.
func (b *runningBinary) submit(t *testing.T, n int, d time.Duration) *task.Task {
	t.Helper()
	var tk task.Task
	body := fmt.Sprintf(`{"kind":"longrunning","params":{"iterations":%d,"interval":%q}}`, n, d.String())
	if code := apiDo(t, "POST", b.url+"/tasks", body, &tk); code != http.StatusCreated {
		t.Fatalf("%s: POST /tasks: %d %+v", b.name, code, tk)
	}
	return &tk
}

// tryDo sends a JSON request and decodes a task from the answer; unlike
// apiDo it returns errors (a node being killed, NATS restarting) instead
// of failing the test.
func tryDo(ctx context.Context, method, url, body string) (int, *task.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	tk := new(task.Task)
	if resp.StatusCode < 300 || resp.StatusCode == http.StatusConflict {
		if err := json.Unmarshal(b, tk); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%d %q: %v", resp.StatusCode, b, err)
		}
		return resp.StatusCode, tk, nil
	}
	return resp.StatusCode, nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
}

func isFinal(tk *task.Task) bool { return tk.State.Final() }

// runningOn returns a condition: running as attempt n on node.
func runningOn(node string, n int) func(*task.Task) bool {
	return func(tk *task.Task) bool { return tk.State == task.Running && tk.Node == node && tk.Attempt == n }
}

// checkNoOverlap fails the test if the nodes' step log lines show a task
// run twice at once.
func checkNoOverlap(t *testing.T, nodes ...*runningBinary) map[string][]faultnet.Run {
	t.Helper()
	var recs []testlog.Record
	for _, n := range nodes {
		recs = append(recs, n.logs.All()...)
	}
	runs := faultnet.Runs(recs)
	if o := faultnet.Overlaps(runs); len(o) > 0 {
		t.Fatalf("a task ran twice at once:\n%s", strings.Join(o, "\n"))
	}
	return runs
}

// TestClusterNodeKilled: kill -9 of the node running tasks: each runs again
// on another node once its lease ended (attempt 2) and finishes, except one
// canceled on another node while its node was dead, which ends canceled
// with the reason without running again; a task
// whose node is killed at each of its max_attempts (3) attempts fails with
// the cause "node lost". No run overlaps another.
func TestClusterNodeKilled(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	obs := ns.observer(t)
	a := startNode(t, ns.url(), "node-a")
	doomed := a.submit(t, 100000, 20*time.Millisecond)
	short := a.submit(t, 60, 20*time.Millisecond)
	stopMe := a.submit(t, 100000, 20*time.Millisecond)
	for _, id := range []string{doomed.ID, short.ID, stopMe.ID} {
		natstest.Until(t, obs, id, "attempt 1 on node-a", runningOn("node-a", 1))
	}
	b := startNode(t, ns.url(), "node-b")

	a.kill(t)
	killed := time.Now()
	// A cancel accepted while the node running the task is dead: the task
	// ends canceled with the reason once the lease ended, and never runs
	// again.
	var canceling task.Task
	if code := apiDo(t, "POST", b.url+"/tasks/"+stopMe.ID+"/cancel", `{"reason":"operator: node died"}`, &canceling); code != http.StatusAccepted || canceling.State != task.Canceling {
		t.Fatalf("cancel on node-b: %d %+v", code, canceling)
	}
	if end := natstest.Until(t, obs, stopMe.ID, "final", isFinal); end.State != task.Canceled || end.Cause != "canceled: operator: node died" || end.Attempt != 1 {
		t.Fatalf("task canceled while its node was dead: %+v", end)
	}
	natstest.Until(t, obs, doomed.ID, "attempt 2 on node-b", runningOn("node-b", 2))
	if d := time.Since(killed); d < clusterLease/2 {
		t.Fatalf("taken over %v after the kill: before the lease could have ended", d)
	}
	if end := natstest.Until(t, obs, short.ID, "final", isFinal); end.State != task.Succeeded || end.Attempt != 2 || end.Node != "node-b" {
		t.Fatalf("task of the killed node: %+v, want succeeded as attempt 2 on node-b", end)
	}

	c := startNode(t, ns.url(), "node-c")
	b.kill(t)
	natstest.Until(t, obs, doomed.ID, "attempt 3 on node-c", runningOn("node-c", 3))
	a2 := startNode(t, ns.url(), "node-a") // node-a back, with a new process
	c.kill(t)
	end := natstest.Until(t, obs, doomed.ID, "final", isFinal)
	if end.State != task.Failed || !strings.HasPrefix(end.Cause, "node lost") || end.Attempt != 3 {
		t.Fatalf("task whose node died at every attempt: %+v, want failed with cause \"node lost\" after attempt 3", end)
	}
	if n := a2.logs.Count(func(r testlog.Record) bool { return r.Str("task") == doomed.ID && r.Str("msg") == "task started" }); n != 0 {
		t.Fatalf("node-a ran the task a fourth time")
	}
	runs := checkNoOverlap(t, a, b, c, a2)
	if len(runs[stopMe.ID]) != 1 {
		t.Fatalf("runs of the task canceled while its node was dead: %v", runs[stopMe.ID])
	}
	if len(runs[doomed.ID]) != 3 {
		t.Fatalf("runs of the doomed task: %v", runs[doomed.ID])
	}
}

// TestClusterFrozenNode: a node frozen with SIGSTOP past its lease, then
// resumed: another node takes its task over only after the lease ended,
// and the resumed node runs no step of it (it cancels the task with
// "lease lost" at once) — no overlapping runs in the step log.
func TestClusterFrozenNode(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	obs := ns.observer(t)
	a := startNode(t, ns.url(), "node-a")
	tk := a.submit(t, 200, 20*time.Millisecond)
	natstest.Until(t, obs, tk.ID, "attempt 1 on node-a", runningOn("node-a", 1))
	b := startNode(t, ns.url(), "node-b")
	a.logs.Wait(t, "a step on node-a", func(r testlog.Record) bool {
		return r.Str("task") == tk.ID && strings.HasPrefix(r.Str("msg"), "Iteration ")
	})
	a.signal(t, syscall.SIGSTOP)
	frozen := time.Now()
	natstest.Until(t, obs, tk.ID, "attempt 2 on node-b", runningOn("node-b", 2))
	if d := time.Since(frozen); d < clusterLease/2 {
		t.Fatalf("taken over %v after the freeze: before the lease could have ended", d)
	}
	// Let node-b run some steps, then resume node-a while they overlap
	// in time with what node-a would do.
	b.logs.Wait(t, "a step on node-b", func(r testlog.Record) bool {
		return r.Str("task") == tk.ID && strings.HasPrefix(r.Str("msg"), "Iteration ")
	})
	a.signal(t, syscall.SIGCONT)
	stopped := a.logs.Wait(t, "node-a stopping its run", func(r testlog.Record) bool {
		return r.Str("task") == tk.ID && r.Str("msg") == "task stopped"
	})
	if stopped.Str("cause") != "lease lost" || stopped["record_written"] != false {
		t.Fatalf("node-a's stop line %v", stopped)
	}
	end := natstest.Until(t, obs, tk.ID, "final", isFinal)
	if end.State != task.Succeeded || end.Attempt != 2 || end.Node != "node-b" {
		t.Fatalf("final %+v, want succeeded as attempt 2 on node-b", end)
	}
	runs := checkNoOverlap(t, a, b)[tk.ID]
	if len(runs) != 2 || runs[1].Steps != 200 {
		t.Fatalf("runs %v", runs)
	}
}

// TestClusterDrain: SIGTERM on a node: it stops taking work, gives its
// tasks -shutdown-grace, then cancels them with "node shutting down" and
// hands them back; it exits 0 and another node finishes them as attempt 2.
// A request-scoped task (GET /longrunningtask) on the draining node
// answers the seed's cancel message.
func TestClusterDrain(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	obs := ns.observer(t)
	a := startNode(t, ns.url(), "node-a", "-shutdown-grace", "300ms")
	tk := a.submit(t, 100, 20*time.Millisecond)
	natstest.Until(t, obs, tk.ID, "attempt 1 on node-a", runningOn("node-a", 1))
	seed := getAsync(t, a.url+"/longrunningtask?iterations=1000&interval=20ms", "seed-drain")
	a.logs.Wait(t, "a step of the seed's task", func(r testlog.Record) bool {
		return r.Str("request_id") == "seed-drain" && strings.HasPrefix(r.Str("msg"), "Iteration ")
	})
	b := startNode(t, ns.url(), "node-b")

	a.signal(t, syscall.SIGTERM)
	r := testlog.Recv(t, "the seed's answer", seed)
	if r.err != nil || strings.TrimSpace(r.body) != cancelledMessage {
		t.Fatalf("seed request on the draining node: %d %q %v", r.code, r.body, r.err)
	}
	if code := waitExit(t, a.cmd); code != 0 {
		t.Fatalf("node-a exited %d after SIGTERM, want 0", code)
	}
	back := a.logs.Wait(t, "the hand-back", func(r testlog.Record) bool {
		return r.Str("task") == tk.ID && r.Str("msg") == "task stopped"
	})
	if back.Str("state") != "queued" || back.Str("cause") != "node shutting down" || back["handed_back"] != true {
		t.Fatalf("node-a's stop line %v, want handed back to the queue", back)
	}
	end := natstest.Until(t, obs, tk.ID, "final", isFinal)
	if end.State != task.Succeeded || end.Attempt != 2 || end.Node != "node-b" {
		t.Fatalf("final %+v, want succeeded as attempt 2 on node-b", end)
	}
	checkNoOverlap(t, a, b)
}

// bulkSize reads a size of TestClusterBulk from the environment (the soak
// in bench/cluster-soak.sh sets them), or returns def.
func bulkSize(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// cluster is the set of live nodes, for requests to a random one.
type cluster struct {
	mu    sync.Mutex
	nodes map[string]*runningBinary
	all   []*runningBinary // every process ever started, for the logs
}

func (c *cluster) add(n *runningBinary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[n.name] = n
	c.all = append(c.all, n)
}

func (c *cluster) remove(name string) *runningBinary {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[name]
	delete(c.nodes, name)
	return n
}

func (c *cluster) random() *runningBinary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*runningBinary
	for _, n := range c.nodes {
		live = append(live, n)
	}
	return live[rand.IntN(len(live))]
}

// do sends a request to random live nodes until one answers with a status
// in ok, or ctx ends.
func (c *cluster) do(ctx context.Context, method, path, body string, ok ...int) (int, *task.Task, error) {
	for {
		code, tk, err := tryDo(ctx, method, c.random().url+path, body)
		if err == nil && slices.Contains(ok, code) {
			return code, tk, nil
		}
		if ctx.Err() != nil {
			return code, tk, fmt.Errorf("%s %s: %v (last: %d %v)", method, path, ctx.Err(), code, err)
		}
		if err == nil {
			return code, tk, fmt.Errorf("%s %s: unexpected %d %+v", method, path, code, tk)
		}
		cancellation.Sleep(ctx, 20*time.Millisecond)
	}
}

// TestClusterBulk: tasks submitted to random nodes of three, and cancels of
// a random part of them sent to random nodes, while one node is killed
// with SIGKILL and restarted and the NATS server is restarted once: every
// canceled task ends canceled with its reason, every other task succeeds,
// none is lost, none ran twice at once. The tasks to cancel are long
// enough that they cannot finish first. Sizes: CLUSTER_BULK_TASKS (150)
// and CLUSTER_BULK_CANCELS (45); bench/cluster-soak.sh runs 1,000 and 300.
func TestClusterBulk(t *testing.T) {
	t.Parallel()
	total := bulkSize(t, "CLUSTER_BULK_TASKS", 150)
	cancels := min(bulkSize(t, "CLUSTER_BULK_CANCELS", 45), total)
	ns := startNATS(t)
	obs := ns.observer(t)
	// A lease longer than a NATS restart takes, so that the restart does
	// not cost every running task an attempt.
	opts := []string{"-lease", "3s", "-concurrency", "24"}
	c := &cluster{nodes: map[string]*runningBinary{}}
	for _, name := range []string{"node-a", "node-b", "node-c"} {
		c.add(startNode(t, ns.url(), name, opts...))
	}
	// The soak runs longer than TimeLeft's cap: bound it by -timeout.
	budget := testlog.TimeLeft(t)
	if dl, ok := t.Deadline(); ok && os.Getenv("CLUSTER_BULK_TASKS") != "" && time.Until(dl) > budget {
		budget = time.Until(dl) - 5*time.Second
	}
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()

	toCancel := map[int]bool{}
	for _, i := range rand.Perm(total)[:cancels] {
		toCancel[i] = true
	}
	ids := make([]string, total)
	cancelIDs := make(chan string, total)
	errs := make(chan error, 2*total)
	var wg sync.WaitGroup
	submit := func(from, to int) {
		sem := make(chan struct{}, 8)
		for i := from; i < to; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				params := fmt.Sprintf(`{"iterations":%d,"interval":"10ms"}`, 1+rand.IntN(20))
				if toCancel[i] {
					params = `{"iterations":100000,"interval":"10ms"}`
				}
				// The same Idempotency-Key on a retry: never two tasks.
				_, tk, err := c.doKey(ctx, fmt.Sprintf("bulk-%d", i), `{"kind":"longrunning","params":`+params+`}`)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = tk.ID
				if toCancel[i] {
					cancelIDs <- tk.ID
				}
			}()
		}
	}
	var cwg sync.WaitGroup
	for range 4 {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for id := range cancelIDs {
				cancellation.Sleep(ctx, time.Duration(rand.IntN(50))*time.Millisecond)
				code, tk, err := c.do(ctx, "POST", "/tasks/"+id+"/cancel", `{"reason":"bulk"}`, http.StatusAccepted, http.StatusConflict)
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("cancel of %s: %d %+v", id, code, tk)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}

	third := total / 3
	submit(0, third)
	// Kill node-c while it runs tasks, and start it again.
	victim := c.remove("node-c")
	victim.logs.Wait(t, "node-c running a task", func(r testlog.Record) bool { return r.Str("msg") == "task started" })
	victim.kill(t)
	submit(third, 2*third)
	c.add(startNode(t, ns.url(), "node-c", opts...))
	ns.restart(t)
	submit(2*third, total)
	wg.Wait()
	close(cancelIDs)
	cwg.Wait()
	close(errs)
	if len(errs) > 0 {
		for _, n := range c.all {
			for _, r := range n.logs.All() {
				if r.Str("level") != "INFO" || r.Num("duration_ms") > 1000 {
					t.Logf("%s: %v", n.name, r)
				}
			}
		}
	}
	for err := range errs {
		t.Fatal(err)
	}

	// Every task reaches its final state.
	pending := map[string]int{}
	for i, id := range ids {
		pending[id] = i
	}
	states := map[task.State]int{}
	for len(pending) > 0 {
		for id, i := range pending {
			tk, _, err := obs.Get(ctx, id)
			if err != nil || !tk.State.Final() {
				continue
			}
			delete(pending, id)
			states[tk.State]++
			switch {
			case toCancel[i] && (tk.State != task.Canceled || tk.Cause != "canceled: bulk"):
				t.Errorf("canceled task %s ended %s (%s)", id, tk.State, tk.Cause)
			case !toCancel[i] && tk.State != task.Succeeded:
				t.Errorf("task %s ended %s (%s) after %d attempts", id, tk.State, tk.Cause, tk.Attempt)
			}
		}
		if ctx.Err() != nil {
			for id := range pending {
				tk, _, err := obs.Get(context.Background(), id)
				t.Logf("not final: %+v %v", tk, err)
				for _, n := range c.all {
					for _, r := range n.logs.All() {
						if r.Str("task") == id {
							t.Logf("%s: %v", n.name, r)
						}
					}
				}
			}
			t.Fatalf("%d tasks not final before the test's deadline (%v)", len(pending), states)
		}
		cancellation.Sleep(ctx, 100*time.Millisecond)
	}
	c.mu.Lock()
	all := slices.Clone(c.all)
	c.mu.Unlock()
	runs := checkNoOverlap(t, all...)
	reruns := 0
	for _, rs := range runs {
		if len(rs) > 1 {
			reruns++
		}
	}
	t.Logf("%d tasks, %d canceled on random nodes, node-c killed and restarted, NATS restarted: %v; %d tasks ran more than once (never at once)",
		total, cancels, states, reruns)
}

// doKey POSTs a task to random live nodes with an Idempotency-Key until
// one answers 201 or 200 (the task already created by an earlier try).
func (c *cluster) doKey(ctx context.Context, key, body string) (int, *task.Task, error) {
	for {
		n := c.random()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(rctx, "POST", n.url+"/tasks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
				tk := new(task.Task)
				err = json.Unmarshal(b, tk)
				cancel()
				return resp.StatusCode, tk, err
			}
			if resp.StatusCode < 500 {
				cancel()
				return resp.StatusCode, nil, fmt.Errorf("POST /tasks: %d %s", resp.StatusCode, b)
			}
		}
		cancel()
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("POST /tasks: %v (last: %v)", ctx.Err(), err)
		}
		cancellation.Sleep(ctx, 20*time.Millisecond)
	}
}

// TestClusterCancelLatency measures, across taskd processes, the time from
// a cancel request on node-b to the task's token canceled on node-a, from
// the final records alone: node-a's finish time minus its stop latency
// (when the token was canceled) minus the cancel's requested_at (on
// node-b, before its write). Both clocks are this machine's. Run it with
// -v to see the numbers; it checks only that every cancel arrived.
func TestClusterCancelLatency(t *testing.T) {
	t.Parallel()
	n := bulkSize(t, "CLUSTER_LATENCY_SAMPLES", 40)
	ns := startNATS(t)
	obs := ns.observer(t)
	a := startNode(t, ns.url(), "node-a", "-concurrency", strconv.Itoa(n))
	var ids []string
	for range n {
		ids = append(ids, a.submit(t, 100000, 50*time.Millisecond).ID)
	}
	for _, id := range ids {
		natstest.Until(t, obs, id, "running on node-a", runningOn("node-a", 1))
	}
	b := startNode(t, ns.url(), "node-b")
	var lat []time.Duration
	for _, id := range ids {
		var tk task.Task
		if code := apiDo(t, "POST", b.url+"/tasks/"+id+"/cancel", `{"reason":"latency"}`, &tk); code != http.StatusAccepted {
			t.Fatalf("cancel: %d %+v", code, tk)
		}
		end := natstest.Until(t, obs, id, "final", isFinal)
		if end.State != task.Canceled || end.StopLatencyMS == nil || end.FinishedAt == nil || end.Node != "node-a" {
			t.Fatalf("final %+v", end)
		}
		lat = append(lat, cancelLatency(end))
	}
	t.Logf("cancel on node-b → token canceled on node-a (taskd processes), %s", latencySummary(lat))
}

// cancelLatency returns, from a task's final record, the time from its
// cancel request (requested_at, on the node that took it) to its token
// canceled (finished_at minus stop_latency, on the node that ran it).
func cancelLatency(end *task.Task) time.Duration {
	stop := time.Duration(*end.StopLatencyMS * float64(time.Millisecond))
	return end.FinishedAt.Add(-stop).Sub(end.Cancel.RequestedAt)
}

// latencySummary sorts lat and says its size, p50, p99 and max.
func latencySummary(lat []time.Duration) string {
	slices.Sort(lat)
	return fmt.Sprintf("%d samples: p50 %v, p99 %v, max %v",
		len(lat), lat[len(lat)/2], lat[min(len(lat)-1, (len(lat)*99+99)/100-1)], lat[len(lat)-1])
}

// TestReplicasOnSingleServer: -replicas above 1 on a NATS server that is
// not part of a cluster fails at start with the server's reason, instead
// of running with fewer copies than asked for.
func TestReplicasOnSingleServer(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	cmd := exec.Command(taskdBinary(t), "-addr", "127.0.0.1:0", "-nats", ns.url(), "-replicas", "3", "-data", t.TempDir())
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "replicas > 1 not supported") {
		t.Fatalf("taskd -replicas 3 on one NATS server: exit %d, output %s", code, out)
	}
}
