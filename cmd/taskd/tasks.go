package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/dashboard"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/go-cancellation/cancellation/task/taskhttp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TaskConfig is the configuration of taskd's background tasks.
type TaskConfig struct {
	Data        string        // -data: directory of the embedded NATS server and of downloads
	NATS        string        // -nats: URL of an existing NATS; "" starts an embedded one
	Node        string        // -node: this node's name; "" means host name and port
	Concurrency int           // -concurrency: queued tasks run at once on this node
	Lease       time.Duration // -lease: how long a running task's claim holds without renewal
	Retention   time.Duration // -retention: how long finished tasks are kept
	Replicas    int           // -replicas: copies of the task bucket and queue in a NATS cluster
	clusterFlags

	replicasSet bool // -replicas was given; if not, a cluster gets 3 (or its size)
}

// defaultTaskConfig returns the defaults of the task flags.
func defaultTaskConfig() TaskConfig {
	return TaskConfig{
		Data:        "taskd-data",
		Concurrency: task.DefaultConcurrency,
		Lease:       task.DefaultLease,
		Retention:   task.DefaultRetention,
		Replicas:    1,
		clusterFlags: clusterFlags{
			ClusterName: defaultClusterName,
			ClusterWait: defaultClusterWait,
		},
	}
}

// addFlags defines the task flags on fs.
func (c *TaskConfig) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "`directory` for the embedded NATS server's JetStream files and for downloads")
	fs.StringVar(&c.NATS, "nats", c.NATS, "`URL` of an existing NATS server with JetStream (default: start an embedded one storing under -data)")
	fs.StringVar(&c.Node, "node", c.Node, "this node's `name` in tasks and cancel requests (default: host name and port)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "how many queued tasks run at once on this node")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "how long a running task's lease holds without renewal")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long finished tasks are kept")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "copies of the task bucket and queue kept by a NATS cluster (JetStream replicas, 1 to 5; at most the cluster's size; with -nats-cluster the default is 3, or the cluster's size if smaller)")
	fs.StringVar(&c.Cluster, "nats-cluster", c.Cluster, "`HOST:PORT` where the embedded NATS server listens for routes from the other nodes' servers: joins them into one NATS cluster (with -nats-routes)")
	fs.StringVar(&c.Routes, "nats-routes", c.Routes, "`URLs` (comma-separated nats-route://HOST:PORT) of the route listeners of the cluster's servers; this node's own may be in the list, so every node can get the same one")
	fs.StringVar(&c.ClusterName, "nats-cluster-name", c.ClusterName, "`name` of the embedded NATS cluster, the same on every node")
	fs.DurationVar(&c.ClusterWait, "nats-cluster-wait", c.ClusterWait, "how long startup waits for the embedded NATS cluster's JetStream (a leader, elected by a majority of the servers, and -replicas servers)")
}

// validate checks the task flags.
func (c *TaskConfig) validate() error {
	plan, err := c.planCluster()
	if err != nil {
		return err
	}
	if plan != nil && !c.replicasSet {
		// One copy would make the server that holds it a single
		// point of failure of the whole cluster.
		c.Replicas = min(3, plan.size())
	}
	switch {
	case c.Data == "":
		return errors.New("invalid -data \"\": give a directory")
	case c.Concurrency < 1:
		return fmt.Errorf("invalid -concurrency %d: must be at least 1", c.Concurrency)
	case c.Lease < 300*time.Millisecond:
		return fmt.Errorf("invalid -lease %v: must be at least 300ms", c.Lease)
	case c.Retention <= 0:
		return fmt.Errorf("invalid -retention %v: must be positive", c.Retention)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("invalid -replicas %d: want 1 to 5 (JetStream's limit), at most the number of NATS servers", c.Replicas)
	case c.NATS == "" && plan == nil && c.Replicas > 1:
		return fmt.Errorf("invalid -replicas %d: the embedded NATS server is alone; join the nodes' servers into a cluster with -nats-cluster and -nats-routes, or use -nats", c.Replicas)
	case plan != nil && c.Replicas > plan.size():
		return fmt.Errorf("invalid -replicas %d: the NATS cluster has %d servers (this one and %d more in -nats-routes)", c.Replicas, plan.size(), len(plan.peers))
	}
	return nil
}

// tasks is taskd's task service: NATS (embedded or not), the store, the
// runner and the API.
type tasks struct {
	log     *slog.Logger
	ns      *server.Server // nil with -nats
	nl      *natsLog       // the clustered server's log; nil without -nats-cluster
	nc      *nats.Conn
	store   *natsstore.Store
	runner  *task.Runner
	api     *taskhttp.API
	metrics *taskhttp.Metrics
	grace   time.Duration

	drainOnce sync.Once
	drained   chan struct{}
	unlock    func() // releases the lock on -data
}

// startTasks connects to NATS (starting the embedded server unless -nats
// is set), opens the store and starts the runner. It blocks until they
// are up, or fails. Stop it with close.
func startTasks(ctx context.Context, cfg Config, logger *slog.Logger, addr net.Addr) (_ *tasks, err error) {
	started := time.Now()
	tc := cfg.Tasks
	s := &tasks{log: logger, grace: cfg.ShutdownGrace, drained: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	node := tc.Node
	if node == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(addr.String())
		node = net.JoinHostPort(host, port)
	}
	plan, err := tc.planCluster() // validated by ParseFlags
	if err != nil {
		return s, err
	}
	url := tc.NATS
	if url == "" {
		dir := filepath.Join(tc.Data, "nats")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return s, err
		}
		if s.unlock, err = lockData(tc.Data); err != nil {
			return s, err
		}
		if plan != nil {
			s.ns, s.nl, err = runClusteredServer(plan, tc.ClusterName, node, dir, logger)
		} else {
			s.ns, err = natsstore.RunServer(natsstore.ServerOptions{Dir: dir})
		}
		if err != nil {
			return s, err
		}
		url = s.ns.ClientURL()
	}
	if s.nc, err = natsstore.Connect(url, "taskd"); err != nil {
		return s, fmt.Errorf("nats %s: %w", url, err)
	}
	sopts := natsstore.Options{
		IdempotencyTTL: tc.Retention,
		Replicas:       tc.Replicas,
		// A claim that a node took off the queue and never acknowledged
		// (it died in between) is handed out again after one lease.
		AckWait: tc.Lease,
	}
	if plan != nil {
		s.store, err = openClusteredStore(ctx, s.ns, s.nl, s.nc, plan, tc.ClusterWait, sopts, logger)
	} else {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s.store, err = natsstore.New(octx, s.nc, sopts)
		cancel()
	}
	if err != nil {
		return s, err
	}
	s.metrics = taskhttp.NewMetrics(s.store)
	kinds := task.NewRegistry(task.LongRunning(), task.Download(filepath.Join(tc.Data, "downloads"), nil))
	if s.runner, err = task.NewRunner(task.Config{
		Store: s.store, Kinds: kinds, Node: node, Concurrency: tc.Concurrency,
		Lease: tc.Lease, Retention: tc.Retention, Logger: logger, OnStop: s.metrics.Stopped,
	}); err != nil {
		return s, err
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err = s.runner.Start(octx); err != nil {
		return s, err
	}
	s.api = taskhttp.New(s.runner, taskhttp.Options{Metrics: s.metrics, Logger: logger})
	context.AfterFunc(ctx, s.drain)
	embedded := "no"
	if s.ns != nil {
		embedded = tc.Data
	}
	attrs := []any{"node", node, "nats", url, "embedded_nats_data", embedded,
		"concurrency", tc.Concurrency, "lease", tc.Lease.String(), "retention", tc.Retention.String(), "replicas", tc.Replicas}
	if plan != nil {
		st := readClusterState(s.ns)
		attrs = append(attrs, "nats_cluster", tc.ClusterName, "nats_cluster_addr", tc.Cluster,
			"nats_routes", plan.routeList(), "nats_cluster_size", plan.size(),
			"nats_connected", strings.Join(st.connected, ","), "nats_leader", st.leader,
			"startup", time.Since(started).Round(time.Millisecond).String())
	}
	logger.Info("tasks ready", attrs...)
	return s, nil
}

// register adds the task API, the metrics and the dashboard to mux.
func (s *tasks) register(mux *http.ServeMux) {
	s.api.Register(mux)
	mux.Handle("/", dashboard.Handler())
}

// drain starts the shutdown of the task service, once: it ends the event
// streams at once (they would hold the HTTP server's grace period) and
// drains the runner beside the HTTP server's own shutdown. It does not
// block.
func (s *tasks) drain() {
	s.drainOnce.Do(func() {
		s.api.CloseStreams()
		go func() {
			defer close(s.drained)
			s.runner.Shutdown(context.Background(), s.grace)
		}()
	})
}

// close drains the runner (if Run's context did not already start that)
// and waits for it, then closes the store, the connection and the
// embedded server.
func (s *tasks) close() {
	if s.api != nil {
		s.drain()
		<-s.drained
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nl != nil {
		s.nl.stopping.Store(true)
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// runAsTask runs the seed's steps as a request-scoped task of kind
// longrunning: listed, watched and cancelable through the task API, with
// progress per step and the task id on each step's log line. It returns the
// token the steps ran under (the task's: canceled by the request, a cancel
// request, or the node shutting down), how many steps completed and the
// error of the steps. Without a runner, or when the runner refuses the
// task (shutting down), the steps run on tok as before.
func (h *taskHandler) runAsTask(tok cancellation.Token, log *slog.Logger, n int, interval time.Duration) (cancellation.Token, int, error) {
	if h.tasks == nil {
		done, err := h.run(tok, log, n, interval)
		return tok, done, err
	}
	// The params as the longrunning kind normalizes them, without a JSON
	// round trip: {"iterations":n,"interval":"1s"}.
	params := make([]byte, 0, 64) // one allocation: the longest params fit
	params = append(params, `{"iterations":`...)
	params = strconv.AppendInt(params, int64(n), 10)
	params = append(append(append(params, `,"interval":"`...), interval.String()...), `"}`...)
	var (
		done    int
		err     error
		taskTok = tok
		ran     bool
	)
	_, _, rerr := h.tasks.RunScoped(tok, task.Spec{Kind: "longrunning", Params: params},
		func(ttok cancellation.Token, run *task.Run) (string, error) {
			ran, taskTok = true, ttok
			done, err = h.runTask(ttok, log, run, n, interval)
			if err != nil {
				return "", err
			}
			return completedMessage, nil
		})
	if !ran {
		log.Warn("Long-running task not run as a task.", "error", rerr)
		done, err = h.run(tok, log, n, interval)
	}
	return taskTok, done, err
}
