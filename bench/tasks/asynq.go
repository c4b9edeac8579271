package tasks

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Asynq is github.com/hibiken/asynq (Redis; a cancel is a pub/sub
// message). The broker is TASKBENCH_REDIS.
type Asynq struct{}

// Name is "asynq".
func (Asynq) Name() string { return "asynq" }

func redisOpt(b Broker) asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Network: b.Network, Addr: b.Addr}
}

// Setup reads TASKBENCH_REDIS and checks that Redis answers.
func (Asynq) Setup(ctx context.Context) (Broker, func(), error) {
	s := os.Getenv("TASKBENCH_REDIS")
	if s == "" {
		return Broker{}, nil, fmt.Errorf("%w: TASKBENCH_REDIS not set", ErrUnavailable)
	}
	b, err := ParseBroker(s)
	if err != nil {
		return Broker{}, nil, err
	}
	rc := redis.NewClient(&redis.Options{Network: b.Network, Addr: b.Addr})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		return Broker{}, nil, fmt.Errorf("%w: redis at %s: %v", ErrUnavailable, b, err)
	}
	return b, func() {}, nil
}

type asynqNode struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	rc        *redis.Client
	srv       *asynq.Server
	queue     string
}

// Open starts an asynq client and inspector; with workers, a server with
// Concurrency opts.Workers on queue opts.Queue and default settings
// otherwise.
func (Asynq) Open(_ context.Context, opts Options) (Node, error) {
	opt := redisOpt(opts.Broker)
	n := &asynqNode{
		client:    asynq.NewClient(opt),
		inspector: asynq.NewInspector(opt),
		rc:        redis.NewClient(&redis.Options{Network: opt.Network, Addr: opt.Addr}),
		queue:     opts.Queue,
	}
	if opts.Workers > 0 {
		ev := opts.Events
		n.srv = asynq.NewServer(opt, asynq.Config{
			Concurrency:     opts.Workers,
			Queues:          map[string]int{opts.Queue: 1},
			LogLevel:        asynq.FatalLevel,
			ShutdownTimeout: 5 * time.Second,
		})
		err := n.srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			if len(t.Payload()) == 0 {
				ev.Done(id, Mono())
				return nil
			}
			ev.Running(id, Mono())
			<-ctx.Done()
			ev.Canceled(id, Mono(), causeString(ctx))
			return ctx.Err()
		}))
		if err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *asynqNode) Submit(ctx context.Context, b Behavior) (string, error) {
	var payload []byte
	if b == Block {
		payload = []byte{1}
	}
	info, err := n.client.EnqueueContext(ctx, asynq.NewTask("bench", payload), asynq.Queue(n.queue), asynq.MaxRetry(0))
	if err != nil {
		return "", err
	}
	return info.ID, nil
}

func (n *asynqNode) Cancel(_ context.Context, id string) error {
	return n.inspector.CancelProcessing(id)
}

func (n *asynqNode) BrokerBytes(ctx context.Context) (int64, error) {
	s, err := n.rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return parseInfoField(s, "used_memory")
}

// parseInfoField finds "name:value" in the text of Redis's INFO.
func parseInfoField(info, name string) (int64, error) {
	for len(info) > 0 {
		var line string
		line, info, _ = strings.Cut(info, "\n")
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO has no %s", name)
}

func (n *asynqNode) Close() error {
	if n.srv != nil {
		n.srv.Shutdown()
	}
	n.inspector.Close()
	n.rc.Close()
	return n.client.Close()
}
