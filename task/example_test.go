package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats.go"
)

// exampleStore starts an embedded NATS server and opens a store on it;
// stop undoes both.
func exampleStore(bucket string) (store *natsstore.Store, stop func()) {
	dir, _ := os.MkdirTemp("", "task-example-")
	ns, err := natsstore.RunServer(natsstore.ServerOptions{Dir: dir})
	if err != nil {
		panic(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		panic(err)
	}
	store, err = natsstore.New(context.Background(), nc, natsstore.Options{Bucket: bucket})
	if err != nil {
		panic(err)
	}
	return store, func() {
		store.Close()
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		os.RemoveAll(dir)
	}
}

// waitFinal watches task id until it is final.
func waitFinal(store task.Store, id string) *task.Task {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, _ := store.Watch(ctx, task.WatchOptions{ID: id, After: 1})
	for ev := range events {
		if ev.Task != nil && ev.Task.State.Final() {
			return ev.Task
		}
	}
	return nil
}

// A kind registered by Go code, a runner, and a task submitted to it.
func ExampleRunner() {
	store, stop := exampleStore("example")
	defer stop()

	greet := task.Kind{Name: "greet", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		var p struct{ Name string }
		if err := run.Params(&p); err != nil {
			return "", err
		}
		run.Progress(1, 1, "greeted")
		return "hello, " + p.Name, nil
	}}
	r, err := task.NewRunner(task.Config{
		Store: store, Kinds: task.NewRegistry(greet), Node: "node-a",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	defer r.Shutdown(ctx, time.Second)

	t, _, err := r.Submit(ctx, task.Spec{Kind: "greet", Params: json.RawMessage(`{"name":"gopher"}`)})
	if err != nil {
		panic(err)
	}
	final := waitFinal(store, t.ID)
	fmt.Println(final.State, final.Result, final.Attempt, final.Node)
	// Output: succeeded hello, gopher 1 node-a
}

// Cancel with a reason: the running function sees it as its token's cause.
func ExampleRunner_Cancel() {
	store, stop := exampleStore("example_cancel")
	defer stop()

	started := make(chan string, 1)
	causes := make(chan error, 1)
	wait := task.Kind{Name: "wait", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		started <- run.ID()
		<-tok.Done()
		causes <- context.Cause(tok)
		return "", tok.Err()
	}}
	r, _ := task.NewRunner(task.Config{Store: store, Kinds: task.NewRegistry(wait), Node: "node-a",
		Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	r.Start(ctx)
	defer r.Shutdown(ctx, time.Second)

	r.Submit(ctx, task.Spec{Kind: "wait"})
	id := <-started
	t, _ := r.Cancel(ctx, id, task.CancelRequest{Reason: "operator: wrong input file"})
	fmt.Println("answer:", t.State)
	fmt.Println("token's cause:", <-causes)
	final := waitFinal(store, id)
	fmt.Println("final:", final.State, final.Cause)
	// Output:
	// answer: canceling
	// token's cause: canceled: operator: wrong input file
	// final: canceled canceled: operator: wrong input file
}
