package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River is github.com/riverqueue/river with its pgx v5 driver (Postgres,
// LISTEN/NOTIFY). The broker is TASKBENCH_POSTGRES, a Postgres server that
// accepts user postgres without a password on database postgres.
type River struct {
	// FetchCooldown, if not zero, replaces River's default (100 ms), which
	// caps a queue at MaxWorkers jobs per cooldown.
	FetchCooldown time.Duration
}

// Name is "river", or "river-fetchcooldown=D" with a FetchCooldown.
func (r River) Name() string {
	if r.FetchCooldown != 0 {
		return "river-fetchcooldown=" + r.FetchCooldown.String()
	}
	return "river"
}

// riverPoolSize matches asynq's default Redis pool on two cores (10 per
// GOMAXPROCS), so that neither peer waits for connections the other has.
const riverPoolSize = 20

func riverPool(ctx context.Context, b Broker) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig("user=postgres dbname=postgres sslmode=disable host=/nonexistent")
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = riverPoolSize
	cfg.ConnConfig.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) { return b.Dial(ctx) }
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	return pgxpool.NewWithConfig(ctx, cfg)
}

// Setup reads TASKBENCH_POSTGRES, checks that Postgres answers and runs
// River's migrations.
func (River) Setup(ctx context.Context) (Broker, func(), error) {
	s := os.Getenv("TASKBENCH_POSTGRES")
	if s == "" {
		return Broker{}, nil, fmt.Errorf("%w: TASKBENCH_POSTGRES not set", ErrUnavailable)
	}
	b, err := ParseBroker(s)
	if err != nil {
		return Broker{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := riverPool(ctx, b)
	if err != nil {
		return Broker{}, nil, err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return Broker{}, nil, fmt.Errorf("%w: postgres at %s: %v", ErrUnavailable, b, err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return Broker{}, nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return Broker{}, nil, fmt.Errorf("river migrations: %w", err)
	}
	return b, func() {}, nil
}

type riverArgs struct {
	Block bool `json:"block,omitempty"`
}

func (riverArgs) Kind() string { return "bench" }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	ev Events
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	id := strconv.FormatInt(job.ID, 10)
	if !job.Args.Block {
		w.ev.Done(id, Mono())
		return nil
	}
	w.ev.Running(id, Mono())
	<-ctx.Done()
	w.ev.Canceled(id, Mono(), causeString(ctx))
	return ctx.Err()
}

// Timeout: no job timeout, a blocking job waits for its cancel.
func (w *riverWorker) Timeout(*river.Job[riverArgs]) time.Duration { return -1 }

type riverNode struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	queue  string
	run    bool
}

// Open starts a River client on its own pgx pool; with workers it runs the
// queue opts.Queue with MaxWorkers opts.Workers and River's default
// settings but for r.FetchCooldown.
func (r River) Open(ctx context.Context, opts Options) (Node, error) {
	pool, err := riverPool(ctx, opts.Broker)
	if err != nil {
		return nil, err
	}
	cfg := &river.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FetchCooldown: r.FetchCooldown}
	if opts.Workers > 0 {
		workers := river.NewWorkers()
		river.AddWorker(workers, &riverWorker{ev: opts.Events})
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{opts.Queue: {MaxWorkers: opts.Workers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	n := &riverNode{pool: pool, client: client, queue: opts.Queue, run: opts.Workers > 0}
	if n.run {
		// Start's context is the client's lifetime, not the call's: Close stops it.
		if err := client.Start(context.WithoutCancel(ctx)); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *riverNode) Submit(ctx context.Context, b Behavior) (string, error) {
	res, err := n.client.Insert(ctx, riverArgs{Block: b == Block}, &river.InsertOpts{Queue: n.queue, MaxAttempts: 1})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(res.Job.ID, 10), nil
}

func (n *riverNode) Cancel(ctx context.Context, id string) error {
	jobID, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return err
	}
	_, err = n.client.JobCancel(ctx, jobID)
	return err
}

func (n *riverNode) BrokerBytes(ctx context.Context) (int64, error) {
	var size int64
	err := n.pool.QueryRow(ctx, "SELECT pg_total_relation_size('river_job')").Scan(&size)
	return size, err
}

func (n *riverNode) Close() error {
	var err error
	if n.run {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.client.StopAndCancel(ctx)
		cancel()
	}
	n.pool.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// causeString is how a worker reports why its context ended.
func causeString(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil {
		return c.Error()
	}
	return ""
}
