package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/faultnet"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The embedded cluster tests run taskd processes whose embedded NATS
// servers form one NATS cluster (-nats-cluster, -nats-routes): no NATS
// server of the test's own.

// routeList returns one route URL per port, comma-separated: the list
// every node of the cluster gets, its own address included.
func routeList(ports []int) string {
	r := make([]string, len(ports))
	for i, p := range ports {
		r[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	return strings.Join(r, ",")
}

// startEmbeddedCluster starts one taskd per name, each with its embedded
// NATS server in one cluster of them all and the extra flags, and waits
// until every one listens (they wait for each other's JetStream).
func startEmbeddedCluster(t *testing.T, names []string, extra ...string) []*runningBinary {
	t.Helper()
	ports := make([]int, len(names))
	for i := range ports {
		ports[i] = faultnet.StablePort(t) // known before any node starts
	}
	routes := routeList(ports)
	nodes := make([]*runningBinary, len(names))
	for i, name := range names {
		args := append([]string{"-node", name, "-lease", clusterLease.String(), "-concurrency", "16", "-data", t.TempDir(),
			"-nats-cluster", fmt.Sprintf("127.0.0.1:%d", ports[i]), "-nats-routes", routes}, extra...)
		cmd, logs := spawnBinary(t, args...)
		nodes[i] = &runningBinary{name: name, cmd: cmd, logs: logs, args: args}
	}
	for _, n := range nodes {
		n.url = listeningURL(t, n.logs)
	}
	return nodes
}

// TestEmbeddedCluster: three taskd processes whose embedded NATS servers
// form one cluster, the bucket and queue with three replicas. A task
// submitted on node-a is seen running from node-c and canceled through
// node-b: it ends canceled with the reason, at once (not after a lease).
// Then the node running a second task is killed with SIGKILL: the two
// left (a majority) go on, and one of them runs the task again as
// attempt 2 once the lease ended; it never ran on two nodes at once.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	taskdBinary(t) // built before the clock starts
	start := time.Now()
	nodes := startEmbeddedCluster(t, []string{"node-a", "node-b", "node-c"}, "-replicas", "3")
	a, b, c := nodes[0], nodes[1], nodes[2]
	t.Logf("three nodes ready in %v", time.Since(start))
	for _, n := range nodes {
		r := n.logs.Wait(t, "tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" })
		if r.Str("nats_cluster") != "taskd" || r.Num("nats_cluster_size") != 3 || r.Num("replicas") != 3 ||
			!strings.Contains(r.Str("nats_routes"), "nats-route://127.0.0.1:") || r.Str("nats_leader") == "" {
			t.Fatalf("%s: tasks ready line %v, want the cluster", n.name, r)
		}
	}

	tk := submitRetrying(t, a, 100000, 20*time.Millisecond)
	running := waitTask(t, c.url, tk.ID, func(tk *task.Task) bool { return tk.State == task.Running })
	var got task.Task
	if code := apiDo(t, "GET", c.url+"/tasks/"+tk.ID, "", &got); code != http.StatusOK || got.State != task.Running || got.Node == "" {
		t.Fatalf("GET on node-c: %d %+v, want running on a node", code, got)
	}
	const reason = "operator: wrong input"
	sent := time.Now()
	if code, canceling := postRetrying(t, b.url+"/tasks/"+tk.ID+"/cancel", `{"reason":"`+reason+`"}`); code != http.StatusAccepted {
		t.Fatalf("cancel on node-b: %d %+v", code, canceling)
	}
	end := waitTask(t, c.url, tk.ID, func(tk *task.Task) bool { return tk.State.Final() })
	seen := time.Since(sent)
	if end.State != task.Canceled || end.Cause != "canceled: "+reason || end.Attempt != 1 || end.Node != running.Node ||
		end.StopLatencyMS == nil || end.FinishedAt == nil || end.Cancel == nil || end.Cancel.Via != "node-b" {
		t.Fatalf("final %+v, want canceled with the reason via node-b as attempt 1 on %s", end, running.Node)
	}
	// From the cancel's write on node-b to the token canceled on the
	// running node, from the records (both clocks are this machine's).
	lat := cancelLatency(end)
	t.Logf("cancel on node-b → token canceled on %s: %v (final state seen on node-c %v after the request)", end.Node, lat, seen)
	// Faster than a lease: the watch brought it, not a lease's end.
	if lat > clusterLease {
		t.Errorf("cancel took %v, more than a lease (%v)", lat, clusterLease)
	}

	// kill -9 of the node running a task.
	tk2 := submitRetrying(t, a, 150, 20*time.Millisecond)
	first := waitTask(t, c.url, tk2.ID, func(tk *task.Task) bool {
		return tk.State == task.Running && tk.Progress != nil && tk.Progress.Done > 0
	})
	victim, survivors := pickNode(t, nodes, first.Node, "task running on")
	victim.kill(t)
	killed := time.Now()
	// Polled rather than followed: an event stream is a watch on the
	// bucket, which a server's death can end while its stream elects a
	// new leader.
	again := pollTask(t, survivors[0].url, tk2.ID, "attempt 2 running", func(tk *task.Task) bool { return tk.State == task.Running && tk.Attempt == 2 })
	took := time.Since(killed)
	if again.Node == victim.name || took < clusterLease/2 {
		t.Fatalf("attempt 2 on %s %v after the kill of %s, want another node after the lease (%v)", again.Node, took, victim.name, clusterLease)
	}
	end2 := pollTask(t, survivors[1].url, tk2.ID, "final", func(tk *task.Task) bool { return tk.State.Final() })
	if end2.State != task.Succeeded || end2.Attempt != 2 || end2.Node != again.Node {
		t.Fatalf("final %+v, want succeeded as attempt 2 on %s", end2, again.Node)
	}
	t.Logf("%s killed: attempt 2 running on %s after %v", victim.name, again.Node, took)
	runs := checkNoOverlap(t, a, b, c)[tk2.ID]
	if len(runs) != 2 || runs[1].Steps != 150 {
		t.Fatalf("runs %v", runs)
	}
}

// TestEmbeddedClusterCancelLatency measures, on three nodes with embedded
// NATS and -replicas 3, the time from a cancel request on node-b to the
// task's token canceled where it runs (any of the three), from the final
// records as TestClusterCancelLatency does. Run it with -v to see the
// numbers (EMBEDDED_LATENCY_SAMPLES, default 20); it checks only that
// every cancel arrived.
func TestEmbeddedClusterCancelLatency(t *testing.T) {
	t.Parallel()
	n := bulkSize(t, "EMBEDDED_LATENCY_SAMPLES", 20)
	nodes := startEmbeddedCluster(t, []string{"node-a", "node-b", "node-c"}, "-replicas", "3", "-concurrency", strconv.Itoa(n))
	var ids []string
	for range n {
		ids = append(ids, submitRetrying(t, nodes[0], 100000, 50*time.Millisecond).ID)
	}
	for _, id := range ids {
		pollTask(t, nodes[1].url, id, "running", func(tk *task.Task) bool { return tk.State == task.Running })
	}
	var lat []time.Duration
	for _, id := range ids {
		if code, tk := postRetrying(t, nodes[1].url+"/tasks/"+id+"/cancel", `{"reason":"latency"}`); code != http.StatusAccepted {
			t.Fatalf("cancel: %d %+v", code, tk)
		}
		end := pollTask(t, nodes[1].url, id, "final", func(tk *task.Task) bool { return tk.State.Final() })
		if end.State != task.Canceled || end.StopLatencyMS == nil || end.FinishedAt == nil {
			t.Fatalf("final %+v", end)
		}
		lat = append(lat, cancelLatency(end))
	}
	t.Logf("cancel on node-b → token canceled on the running node (embedded NATS, R3), %s", latencySummary(lat))
}

// restartNode starts node n again with its flags (its -data, its route
// port) and waits until it listens.
func restartNode(t *testing.T, n *runningBinary) *runningBinary {
	t.Helper()
	cmd, logs := spawnBinary(t, n.args...)
	return &runningBinary{name: n.name, cmd: cmd, logs: logs, url: listeningURL(t, logs), args: n.args}
}

// TestEmbeddedClusterQuorum: (without -replicas: 3 by default) one node of
// three left alone (the two others
// killed) cannot write: POST /tasks is answered 503, GET still answers,
// and its running task stops with "lease lost" at the end of its lease
// (nobody can take it over, nor does it run on). Once a killed node is
// back (restarted with its -data), the cluster has a majority again and
// the task runs again as attempt 2; it never ran twice at once.
func TestEmbeddedClusterQuorum(t *testing.T) {
	t.Parallel()
	// No -replicas: three by default in a cluster of three.
	nodes := startEmbeddedCluster(t, []string{"node-a", "node-b", "node-c"})
	for _, n := range nodes {
		if r := n.logs.Wait(t, "tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" }); r.Num("replicas") != 3 {
			t.Fatalf("%s: %v, want replicas=3", n.name, r)
		}
	}
	tk := submitRetrying(t, nodes[0], 100000, 20*time.Millisecond)
	first := pollTask(t, nodes[0].url, tk.ID, "running", func(tk *task.Task) bool { return tk.State == task.Running })
	alone, killed := pickNode(t, nodes, first.Node, "task running on")
	for _, n := range killed {
		n.kill(t)
	}
	stopped := alone.logs.Wait(t, "the lone node stopping its task", func(r testlog.Record) bool {
		return r.Str("task") == tk.ID && r.Str("msg") == "task stopped"
	})
	if stopped.Str("cause") != "lease lost" {
		t.Fatalf("%s stopped the task with %v, want cause \"lease lost\"", alone.name, stopped)
	}
	ctx := testlog.DeadlineContext(t)
	if code, _, err := tryDo(ctx, "POST", alone.url+"/tasks", `{"kind":"longrunning"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("POST /tasks on the lone node: %d %v, want 503", code, err)
	}
	var got task.Task
	if code := apiDo(t, "GET", alone.url+"/tasks/"+tk.ID, "", &got); code != http.StatusOK || got.ID != tk.ID {
		t.Fatalf("GET on the lone node: %d %+v", code, got)
	}

	back := restartNode(t, killed[0])
	again := pollTask(t, alone.url, tk.ID, "attempt 2 running", func(tk *task.Task) bool { return tk.State == task.Running && tk.Attempt == 2 })
	t.Logf("%s alone: task stopped (lease lost); %s restarted: attempt 2 on %s", alone.name, back.name, again.Node)
	runs := checkNoOverlap(t, append(nodes, back)...)[tk.ID]
	if len(runs) != 2 {
		t.Fatalf("runs %v", runs)
	}
}

// TestEmbeddedClusterDrain: SIGTERM of the node whose NATS server leads
// the task bucket: it exits 0, and its server, stopping gracefully, hands
// its leaderships over, so the two nodes left write at once rather than
// after an election (which NATS's Raft timeouts put 3-9 s after a
// leader's last heartbeat: what a SIGKILL costs).
func TestEmbeddedClusterDrain(t *testing.T) {
	t.Parallel()
	nodes := startEmbeddedCluster(t, []string{"node-a", "node-b", "node-c"}, "-replicas", "3", "-shutdown-grace", "0")
	ctx := testlog.DeadlineContext(t)
	// Which server leads the bucket, asked as a NATS client of node-a's.
	ready := nodes[0].logs.Wait(t, "tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" })
	nc, err := nats.Connect(ready.Str("nats"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	if st, err := js.Stream(ctx, "KV_tasks"); err == nil && st.CachedInfo().Cluster != nil {
		leader = st.CachedInfo().Cluster.Leader
	}
	nc.Close()
	victim, survivors := pickNode(t, nodes, leader, "bucket led by")
	victim.signal(t, syscall.SIGTERM)
	if code := waitExit(t, victim.cmd); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0", victim.name, code)
	}
	exited := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		code, _, err := tryDo(ctx, "POST", survivors[0].url+"/tasks", `{"kind":"longrunning","params":{"iterations":1,"interval":"1ms"}}`)
		if code == http.StatusCreated {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("POST /tasks on %s after %s stopped: %d %v", survivors[0].name, victim.name, code, err)
		}
		<-tick.C
	}
	took := time.Since(exited)
	t.Logf("%s (bucket leader) drained; first write on %s %v after its exit", victim.name, survivors[0].name, took)
	// An election takes at least 3 s after the leader's last heartbeat.
	if took > 2*time.Second {
		t.Fatalf("first write %v after the leader's exit: the leadership was not handed over", took)
	}
}

// postRetrying POSTs body to url until the answer is not 503, as a client
// does (a write can find a bucket or the queue between two leaders right
// after the start, or after a NATS server died), and returns the status and
// the task answered. A POST /tasks carries an Idempotency-Key, so that a
// retry creates no second task. Retries are logged.
func postRetrying(t *testing.T, url, body string) (int, *task.Task) {
	t.Helper()
	ctx := testlog.DeadlineContext(t)
	key := fmt.Sprintf("retry-%d", time.Now().UnixNano())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for tries := 1; ; tries++ {
		req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if strings.HasSuffix(url, "/tasks") {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, b := testlog.Do(t, h1Client(t), req)
		if resp.StatusCode != http.StatusServiceUnavailable {
			tk := new(task.Task)
			if err := json.Unmarshal(b, tk); err != nil {
				t.Fatalf("POST %s: %d %q: %v", url, resp.StatusCode, b, err)
			}
			if tries > 1 {
				t.Logf("POST %s: answered %d after %d tries (503 before)", url, resp.StatusCode, tries)
			}
			return resp.StatusCode, tk
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("POST %s: still 503 after %d tries: %s", url, tries, b)
		}
	}
}

// submitRetrying POSTs a longrunning task of n steps of d to node, retrying
// on 503 (postRetrying).
func submitRetrying(t *testing.T, node *runningBinary, n int, d time.Duration) *task.Task {
	t.Helper()
	body := fmt.Sprintf(`{"kind":"longrunning","params":{"iterations":%d,"interval":%q}}`, n, d.String())
	code, tk := postRetrying(t, node.url+"/tasks", body)
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("%s: POST /tasks: %d %+v", node.name, code, tk)
	}
	return tk
}

// pollTask GETs task id from the node at base every 20ms until match
// holds, and fails the test after [testlog.TimeLeft]. Failed requests
// are retried.
func pollTask(t *testing.T, base, id, what string, match func(*task.Task) bool) *task.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testlog.TimeLeft(t))
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last *task.Task
	for {
		if _, tk, err := tryDo(ctx, "GET", base+"/tasks/"+id, ""); err == nil {
			if match(tk) {
				return tk
			}
			last = tk
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("task %s never %s on %s; last seen %+v", id, what, base, last)
		}
	}
}

// TestEmbeddedClusterWaitTimeout: a node whose peers never start gives
// up after -nats-cluster-wait, exit status 1, saying what is missing.
func TestEmbeddedClusterWaitTimeout(t *testing.T) {
	t.Parallel()
	ports := []int{faultnet.StablePort(t), faultnet.StablePort(t), faultnet.StablePort(t)}
	var stderr bytes.Buffer
	cmd := exec.Command(taskdBinary(t), "-addr", "127.0.0.1:0", "-data", t.TempDir(), "-node", "node-a",
		"-nats-cluster", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-nats-routes", routeList(ports),
		"-nats-cluster-wait", "1s", "-replicas", "3")
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	testlog.Recv(t, "taskd to give up", done)
	want := "JetStream cluster has no leader: 0 of 2 other servers connected"
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant status 1 and %q", code, stderr.String(), want)
	}
}

// TestClusterFlagErrors: wrong combinations of the cluster flags are
// usage errors (status 2) with a message saying what is wrong.
func TestClusterFlagErrors(t *testing.T) {
	t.Parallel()
	route := "nats-route://127.0.0.1:6222"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-nats-routes", route}, "invalid -nats-routes without -nats-cluster"},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats", "nats://127.0.0.1:4222"}, "-nats-cluster and -nats exclude each other"},
		{[]string{"-nats-cluster", "6222"}, `invalid -nats-cluster "6222": want HOST:PORT`},
		{[]string{"-nats-cluster", "127.0.0.1:0"}, `invalid -nats-cluster "127.0.0.1:0"`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "http://127.0.0.1:6223"}, `invalid route "http://127.0.0.1:6223" in -nats-routes: want the scheme nats-route://`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "nats-route://127.0.0.1"}, `invalid route "nats-route://127.0.0.1" in -nats-routes: want a port`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "nats-route://:6223"}, `invalid route "nats-route://:6223"`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "nats-route://h:6223/x"}, `invalid route "nats-route://h:6223/x"`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "nats-route://%zz:1"}, `invalid route "nats-route://%zz:1"`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-cluster-name", "my cluster"}, `invalid -nats-cluster-name "my cluster"`},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-cluster-wait", "0s"}, "invalid -nats-cluster-wait 0s"},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-node", "node a"}, `invalid -node "node a"`},
		// This node's own route does not count twice: two servers.
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", route + ",nats-route://127.0.0.1:6223", "-replicas", "3"},
			"invalid -replicas 3: the NATS cluster has 2 servers (this one and 1 more in -nats-routes)"},
		{[]string{"-nats-cluster", "0.0.0.0:6222", "-nats-routes", "nats-route://localhost:6222,nats-route://127.0.0.1:6222,nats-route://10.9.9.9:6222", "-replicas", "3"},
			"invalid -replicas 3: the NATS cluster has 2 servers"},
		{[]string{"-replicas", "3"}, "invalid -replicas 3: the embedded NATS server is alone"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr}
		err := m.Run(context.Background(), tt.args)
		if code := exitCode(err, io.Discard); code != 2 || !strings.HasPrefix(stderr.String(), "taskd: ") ||
			!strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q; want status 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
	// The built binary: the message on stderr, status 2.
	var stderr bytes.Buffer
	cmd := exec.Command(taskdBinary(t), "-nats-routes", route)
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.HasPrefix(stderr.String(), "taskd: invalid -nats-routes without -nats-cluster") {
		t.Fatalf("binary: exit %d, stderr %q", code, stderr.String())
	}
}

// TestClusterDefaultReplicas: with -nats-cluster and no -replicas, the
// bucket and queue get three copies, or one per server in a smaller
// cluster; a -replicas given is kept.
func TestClusterDefaultReplicas(t *testing.T) {
	t.Parallel()
	three := "nats-route://127.0.0.1:6222,nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224"
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, 1},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", three}, 3},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", three + ",nats-route://127.0.0.1:6225,nats-route://127.0.0.1:6226"}, 3},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", "nats-route://127.0.0.1:6223"}, 2},
		{[]string{"-nats-cluster", "127.0.0.1:6222", "-nats-routes", three, "-replicas", "1"}, 1},
	} {
		m := &Main{}
		if err := m.ParseFlags(tt.args); err != nil || m.Config.Tasks.Replicas != tt.want {
			t.Errorf("%q: replicas %d (%v), want %d", tt.args, m.Config.Tasks.Replicas, err, tt.want)
		}
	}
}

// TestClusterPlan: the cluster's size counts this node once, whether or
// not -nats-routes lists it, and by whatever local address.
func TestClusterPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cluster, routes string
		size            int
	}{
		{"127.0.0.1:6222", "", 1},
		{"127.0.0.1:6222", "nats-route://127.0.0.1:6223", 2},
		{"127.0.0.1:6222", "nats-route://127.0.0.1:6222,nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224", 3},
		{"127.0.0.1:6222", "nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6223", 2}, // duplicates once
		{":6222", "nats-route://localhost:6222,nats-route://10.9.9.8:6222,nats-route://10.9.9.9:6222", 3},
		{"0.0.0.0:6222", "nats-route://127.0.0.1:6222,nats-route://10.9.9.8:6222,nats-route://10.9.9.9:6222", 3},
		{"10.9.9.7:6222", "nats-route://10.9.9.7:6222,nats-route://10.9.9.8:6222,nats-route://127.0.0.1:6222", 3},
		{"127.0.0.1:6222", "nats-route://127.0.0.1:7222,nats-route://127.0.0.1:8222", 3}, // other ports: peers
		{"127.0.0.1:6222", "nats-route://user:secret@127.0.0.1:6223", 2},
	}
	for _, tt := range tests {
		c := defaultTaskConfig()
		c.Cluster, c.Routes = tt.cluster, tt.routes
		p, err := c.planCluster()
		if err != nil {
			t.Errorf("-nats-cluster %s -nats-routes %q: %v", tt.cluster, tt.routes, err)
			continue
		}
		if strings.Contains(p.routeList(), "secret") {
			t.Errorf("routeList %q shows a password", p.routeList())
		}
		if p.size() != tt.size {
			t.Errorf("-nats-cluster %s -nats-routes %q: size %d, want %d", tt.cluster, tt.routes, p.size(), tt.size)
		}
	}
}

// TestNextTryTimeout: the bound of a try to open the store doubles only
// when tries run out of time at the same step, and never past its cap
// (tries failing at once, a hundred times, once overflowed it).
func TestNextTryTimeout(t *testing.T) {
	t.Parallel()
	timeout := fmt.Errorf("natsstore: bucket tasks: %w", context.DeadlineExceeded)
	further := fmt.Errorf("natsstore: bucket tasks_idem: %w", context.DeadlineExceeded)
	unavailable := errors.New("natsstore: bucket tasks: JetStream system temporarily unavailable")
	for _, tt := range []struct {
		err, prev error
		want      time.Duration
	}{
		{timeout, nil, time.Second},
		{timeout, timeout, 2 * time.Second},
		{further, timeout, time.Second},
		{unavailable, unavailable, time.Second},
	} {
		if got := nextTryTimeout(time.Second, tt.err, tt.prev); got != tt.want {
			t.Errorf("after %v (before: %v): %v, want %v", tt.err, tt.prev, got, tt.want)
		}
	}
	d := time.Second
	for range 100 {
		d = nextTryTimeout(d, timeout, timeout)
	}
	if d != maxTryTimeout {
		t.Errorf("after 100 timeouts: %v, want %v", d, maxTryTimeout)
	}
}

// TestNATSLogRepeats: the embedded server's repeated messages (a route
// retried every second, with its attempt number) are logged once per
// natsLogRepeat; warnings are at info level while the cluster forms.
func TestNATSLogRepeats(t *testing.T) {
	t.Parallel()
	logs := testlog.NewSink()
	l := &natsLog{log: logs.Logger()}
	for i := range 5 {
		l.Errorf("Error trying to connect to route (attempt %d): dial tcp 127.0.0.1:6224: connect: connection refused", i+1)
		l.Warnf("JetStream has not established contact with a meta leader")
	}
	l.started.Store(true)
	l.Warnf("Stream state outdated")
	want := []string{"WARN Error trying to connect to route (attempt 1): dial tcp 127.0.0.1:6224: connect: connection refused",
		"INFO JetStream has not established contact with a meta leader", "WARN Stream state outdated"}
	var got []string
	for _, r := range logs.All() {
		got = append(got, r.Str("level")+" "+r.Str("msg"))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzParseRoute: a -nats-routes entry is either refused with an error
// naming it, or a nats-route:// URL with a host and a port from 1 to 65535,
// which parses again to the same host.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"nats-route://127.0.0.1:6222", "nats-route://user:pass@node-a:6222", "nats-route://[::1]:6222",
		"nats-route://h:0", "nats-route://h", "http://h:1", "nats-route://:1", "nats-route://h:1/x", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseRoute(s)
		if err != nil {
			if !strings.Contains(err.Error(), "in -nats-routes") {
				t.Fatalf("%q: error %q does not say where", s, err)
			}
			return
		}
		port, perr := strconv.Atoi(u.Port())
		if u.Scheme != "nats-route" || u.Hostname() == "" || perr != nil || port < 1 || port > 65535 {
			t.Fatalf("%q accepted as %#v", s, u)
		}
		again, err := parseRoute(u.String())
		if err != nil || again.Host != u.Host {
			t.Fatalf("%q: %q parses again to %v, %v", s, u.String(), again, err)
		}
	})
}

// pickNode returns the node named name and the others; it fails t, saying
// what (as in "task running on") named a node that is not one of them.
func pickNode(t *testing.T, nodes []*runningBinary, name, what string) (*runningBinary, []*runningBinary) {
	t.Helper()
	var picked *runningBinary
	var others []*runningBinary
	for _, n := range nodes {
		if n.name == name {
			picked = n
		} else {
			others = append(others, n)
		}
	}
	if picked == nil {
		t.Fatalf("%s %q, not one of the nodes", what, name)
	}
	return picked, others
}
