package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func init() { extraPeers = append(extraPeers, Taskd{}) }

// Taskd is this project's package task on task/natsstore: the runner taskd
// runs, on a NATS server with JetStream embedded in the harness's process
// (storage on disk, as taskd's default), which every node of a
// measurement reaches over loopback TCP.
type Taskd struct{}

// Name is "taskd".
func (Taskd) Name() string { return "taskd" }

// Setup starts the embedded NATS server with JetStream in a temporary
// directory; the returned function stops it and removes the directory.
func (Taskd) Setup(context.Context) (Broker, func(), error) {
	dir, err := os.MkdirTemp("", "taskbench-nats-")
	if err != nil {
		return Broker{}, nil, err
	}
	ns, err := natsstore.RunServer(natsstore.ServerOptions{Dir: dir, ServerName: "taskbench"})
	if err != nil {
		os.RemoveAll(dir)
		return Broker{}, nil, err
	}
	addr := ns.Addr().String()
	return Broker{"tcp", addr}, func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		os.RemoveAll(dir)
	}, nil
}

type taskdParams struct {
	Block bool `json:"block,omitempty"`
}

var (
	noopParams  = json.RawMessage(`{}`)
	blockParams = json.RawMessage(`{"block":true}`)
)

type taskdNode struct {
	nc     *nats.Conn
	store  *natsstore.Store
	runner *task.Runner
	run    bool
}

// Open connects to NATS as a task node does (natsstore.Connect),
// opens the store with the bucket opts.Queue and makes a task.Runner with
// Concurrency opts.Workers, started only when opts.Workers > 0.
func (Taskd) Open(ctx context.Context, opts Options) (Node, error) {
	nc, err := natsstore.Connect("nats://"+opts.Broker.Addr, "taskbench")
	if err != nil {
		return nil, err
	}
	store, err := natsstore.New(ctx, nc, natsstore.Options{Bucket: opts.Queue})
	if err != nil {
		nc.Close()
		return nil, err
	}
	ev := opts.Events
	kinds := task.NewRegistry(task.Kind{Name: "bench", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		var p taskdParams
		if err := run.Params(&p); err != nil {
			return "", err
		}
		if !p.Block {
			ev.Done(run.ID(), Mono())
			return "", nil
		}
		ev.Running(run.ID(), Mono())
		<-tok.Done()
		ev.Canceled(run.ID(), Mono(), causeString(tok))
		return "", tok.Err()
	}})
	runner, err := task.NewRunner(task.Config{
		Store: store, Kinds: kinds, Node: fmt.Sprintf("bench-%d", os.Getpid()),
		Concurrency: max(opts.Workers, 1), MaxAttempts: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		store.Close()
		nc.Close()
		return nil, err
	}
	n := &taskdNode{nc: nc, store: store, runner: runner, run: opts.Workers > 0}
	if n.run {
		if err := runner.Start(ctx); err != nil {
			store.Close()
			nc.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *taskdNode) Submit(ctx context.Context, b Behavior) (string, error) {
	params := noopParams
	if b == Block {
		params = blockParams
	}
	t, _, err := n.runner.Submit(ctx, task.Spec{Kind: "bench", Params: params})
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

func (n *taskdNode) Cancel(ctx context.Context, id string) error {
	_, err := n.runner.Cancel(ctx, id, task.CancelRequest{Reason: "benchmark"})
	return err
}

// BrokerBytes is the JetStream account's file and memory storage in use.
func (n *taskdNode) BrokerBytes(ctx context.Context) (int64, error) {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return 0, err
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.Store + info.Memory), nil
}

func (n *taskdNode) Close() error {
	var err error
	if n.run {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.runner.Shutdown(ctx, 0)
		cancel()
	}
	n.store.Close()
	n.nc.Close()
	return err
}
