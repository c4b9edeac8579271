// Package natsstore is the NATS JetStream implementation of task.Store:
// task records in a KV bucket (each change a compare-and-set on the key's
// revision), the work queue in a work-queue stream pulled by a durable
// consumer, and changes (cancel requests included) delivered by KV
// watches. Every taskd on the same NATS shares one bucket and one queue.
//
// Rules:
//   - A revision is the KV stream's sequence number: it grows across the
//     whole bucket, so it orders every change and serves as an event id.
//   - List reads a local copy of the bucket kept current by a watch; the
//     writes of this Store are applied to it at once, so a List after a
//     write returns that write.
//   - Idempotency keys live in a second bucket whose entries expire after
//     Options.IdempotencyTTL.
//   - A claimed queue message not acknowledged within Options.AckWait is
//     delivered again.
//
// [RunServer] starts the embedded NATS server (JetStream on disk) that
// taskd uses when no NATS URL is given, and that the tests use.
package natsstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures a [Store]. The zero value of each field means its
// default.
type Options struct {
	// Bucket names the KV bucket of records; the idempotency bucket is
	// Bucket+"_idem" and the queue stream Bucket+"_queue". Default "tasks".
	Bucket string
	// Memory keeps everything in memory instead of on disk (tests).
	Memory bool
	// Replicas of the bucket and stream in a NATS cluster. Default 1.
	Replicas int
	// AckWait is how long a claimed queue message may stay unacknowledged
	// before it is delivered again. Default 30s.
	AckWait time.Duration
	// IdempotencyTTL is how long an idempotency key is remembered.
	// Default 24h.
	IdempotencyTTL time.Duration
	// RequestTimeout bounds each request to the server: a request in
	// flight when the connection drops (a NATS restart, a network cut) is
	// never answered, and fails after this long instead of waiting for the
	// caller's deadline. Default 5s.
	RequestTimeout time.Duration
}

// Store is a task.Store on NATS JetStream. Make one with [New]; Close it
// when done. All methods are safe for concurrent use.
type Store struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	idem  jetstream.KeyValue
	cons  jetstream.Consumer
	queue jetstream.Stream
	subj  string
	life  *cancellation.Source
	reqTO time.Duration
	wg    sync.WaitGroup
	cache cache
}

var _ task.Store = (*Store)(nil)

// setupTimeout bounds New's calls to the server when its ctx has no
// deadline.
const setupTimeout = 30 * time.Second

// New creates (or opens) the bucket, the idempotency bucket and the queue
// on nc's JetStream, loads the local copy of the records and returns the
// Store. It blocks until that is done or ctx is done (at most 30 s when ctx
// has no deadline). The Store does not
// own nc: close nc after [Store.Close].
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		opts.Bucket = "tasks"
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	storage := jetstream.FileStorage
	if opts.Memory {
		storage = jetstream.MemoryStorage
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	// Creating file-backed buckets and the stream waits for the server's
	// disk; on a busy one that takes longer than the client library's
	// default of 5 s for a call without a deadline. Setup is done once, so
	// it gets a bound of its own unless ctx has one.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, setupTimeout)
		defer cancel()
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.Bucket, Description: "task records",
		History: 1, Storage: storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: bucket %s: %w", opts.Bucket, err)
	}
	idem, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.Bucket + "_idem", Description: "idempotency keys of task creations",
		History: 1, TTL: opts.IdempotencyTTL, Storage: storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: bucket %s_idem: %w", opts.Bucket, err)
	}
	subj := opts.Bucket + ".queue"
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: opts.Bucket + "_queue", Description: "ids of queued tasks",
		Subjects: []string{subj}, Retention: jetstream.WorkQueuePolicy,
		Storage: storage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: stream %s_queue: %w", opts.Bucket, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "runners", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: opts.AckWait, MaxDeliver: -1, MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: consumer: %w", err)
	}
	s := &Store{nc: nc, js: js, kv: kv, idem: idem, cons: cons, queue: stream, subj: subj, life: cancellation.New(), reqTO: opts.RequestTimeout}
	s.cache.init()
	if err := s.startMirror(ctx); err != nil {
		s.life.Cancel()
		return nil, err
	}
	return s, nil
}

// Close stops the Store's watches. It blocks until they have stopped and
// is idempotent. Calls made after Close fail or return closed channels.
func (s *Store) Close() error {
	s.life.CancelCause(errors.New("natsstore: closed"))
	s.wg.Wait()
	return nil
}

// startMirror loads every record into the cache and keeps it current.
func (s *Store) startMirror(ctx context.Context) error {
	w, err := s.kv.Watch(s.life.Token(), "*")
	if err != nil {
		return err
	}
	// Load the initial values (a nil entry marks their end).
	for loading := true; loading; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("natsstore: watch closed while loading")
			}
			if e == nil {
				loading = false
				break
			}
			s.cache.apply(entryEvent(e))
		case <-ctx.Done():
			w.Stop()
			return ctx.Err()
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer w.Stop()
		for e := range w.Updates() {
			if e != nil {
				s.cache.apply(entryEvent(e))
			}
		}
	}()
	return nil
}

// bound returns ctx bounded by the request timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.reqTO)
}

func entryEvent(e jetstream.KeyValueEntry) task.Event {
	ev := task.Event{Rev: e.Revision(), ID: e.Key()}
	if e.Operation() != jetstream.KeyValuePut {
		ev.Deleted = true
		return ev
	}
	t := new(task.Task)
	if err := json.Unmarshal(e.Value(), t); err != nil {
		ev.Deleted = true // unreadable: treat as gone
		return ev
	}
	ev.Task = t
	return ev
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: %v", task.ErrConflict, err)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: %v", task.ErrExists, err)
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return task.ErrNotFound
	}
	return err
}

// Create stores t; see task.Store.
func (s *Store) Create(ctx context.Context, t *task.Task) (*task.Task, uint64, error) {
	if !task.ValidID(t.ID) {
		return nil, 0, fmt.Errorf("natsstore: invalid task id %q", t.ID)
	}
	if t.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(t.IdempotencyKey))
		key := hex.EncodeToString(sum[:])
		rctx, cancel := s.bound(ctx)
		_, err := s.idem.Create(rctx, key, []byte(t.ID))
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, 0, err
			}
			return s.existing(ctx, key, t)
		}
	}
	return s.createRecord(ctx, t)
}

// createRecord stores the new record t.
func (s *Store) createRecord(ctx context.Context, t *task.Task) (*task.Task, uint64, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, 0, err
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	rev, err := s.kv.Create(rctx, t.ID, b)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	c := t.Clone()
	s.cache.apply(task.Event{Rev: rev, ID: t.ID, Task: c})
	return t.Clone(), rev, nil
}

// existing returns the task an idempotency key names, waiting briefly
// for a concurrent Create that reserved the key to store its task. When
// that task never appears (the Create that reserved the key failed after
// reserving it: its connection dropped), it creates want under the reserved
// id: every Create with the key stores the same task, exactly once.
func (s *Store) existing(ctx context.Context, key string, want *task.Task) (*task.Task, uint64, error) {
	rctx, cancel := s.bound(ctx)
	e, err := s.idem.Get(rctx, key)
	cancel()
	if err != nil {
		return nil, 0, err
	}
	id := string(e.Value())
	for wait := time.Millisecond; ; wait *= 2 {
		t, rev, err := s.Get(ctx, id)
		if err == nil {
			return t, rev, fmt.Errorf("%w: idempotency key used by %s", task.ErrExists, id)
		}
		if !errors.Is(err, task.ErrNotFound) {
			return nil, 0, err
		}
		if wait > time.Second {
			c := want.Clone()
			c.ID = id
			created, rev, err := s.createRecord(ctx, c)
			if !errors.Is(err, task.ErrExists) {
				return created, rev, err
			}
			// The first Create got there after all, or the task was
			// deleted (finished and past its retention).
			if t, rev, err := s.Get(ctx, id); err == nil {
				return t, rev, fmt.Errorf("%w: idempotency key used by %s", task.ErrExists, id)
			}
			return nil, 0, fmt.Errorf("%w: idempotency key used by %s, which was deleted", task.ErrExists, id)
		}
		if err := cancellation.Sleep(ctx, wait); err != nil {
			return nil, 0, err
		}
	}
}

// Get returns a task and its revision; see task.Store.
func (s *Store) Get(ctx context.Context, id string) (*task.Task, uint64, error) {
	if !task.ValidID(id) {
		return nil, 0, task.ErrNotFound
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	e, err := s.kv.Get(rctx, id)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	t := new(task.Task)
	if err := json.Unmarshal(e.Value(), t); err != nil {
		return nil, 0, fmt.Errorf("natsstore: record %s: %w", id, err)
	}
	return t, e.Revision(), nil
}

// Update writes t if its revision is still rev; see task.Store.
func (s *Store) Update(ctx context.Context, t *task.Task, rev uint64) (uint64, error) {
	if !task.ValidID(t.ID) {
		return 0, task.ErrNotFound
	}
	b, err := json.Marshal(t)
	if err != nil {
		return 0, err
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	newRev, err := s.kv.Update(rctx, t.ID, b, rev)
	if err != nil {
		return 0, mapErr(err)
	}
	s.cache.apply(task.Event{Rev: newRev, ID: t.ID, Task: t.Clone()})
	return newRev, nil
}

// Delete removes a task if its revision is still rev; see task.Store.
func (s *Store) Delete(ctx context.Context, id string, rev uint64) error {
	if !task.ValidID(id) {
		return task.ErrNotFound
	}
	rctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.kv.Purge(rctx, id, jetstream.LastRevision(rev)); err != nil {
		return mapErr(err)
	}
	s.cache.apply(task.Event{Rev: rev + 1, ID: id, Deleted: true})
	return nil
}

// List returns a page of tasks, newest first; see task.Store.
func (s *Store) List(ctx context.Context, opts task.ListOptions) (task.Page, error) {
	after := ""
	if opts.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(opts.PageToken)
		if err != nil || !task.ValidID(string(b)) {
			return task.Page{}, fmt.Errorf("%w: malformed page token", task.ErrInvalid)
		}
		after = string(b)
	}
	return s.cache.list(opts, after), ctx.Err()
}

// Watch delivers changes; see task.Store.
func (s *Store) Watch(ctx context.Context, opts task.WatchOptions) (<-chan task.Event, error) {
	key := "*"
	if opts.ID != "" {
		if !task.ValidID(opts.ID) {
			return nil, task.ErrNotFound
		}
		key = opts.ID
	}
	if opts.After == 0 {
		// "From now on" is "after the bucket's last revision now", asked
		// for by sequence: a watch started with "only new updates" that
		// the client library resets (a missed heartbeat, a reconnect)
		// before its first message starts over from the reset's "now" and
		// loses what came in between (a cancel request).
		last, err := s.lastRevision(ctx)
		if err != nil {
			return nil, err
		}
		opts.After = last
	}
	wopt := jetstream.ResumeFromRevision(opts.After + 1)
	wctx, stop := context.WithCancel(ctx)
	unlink := context.AfterFunc(s.life.Token(), stop)
	w, err := s.kv.Watch(wctx, key, wopt)
	if err != nil {
		unlink()
		stop()
		return nil, err
	}
	out := make(chan task.Event, 64)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer unlink()
		defer func() {
			// The watcher's callback blocks while its channel is full:
			// drain it until the subscription is closed.
			stop()
			w.Stop()
			for range w.Updates() {
			}
		}()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Revision() <= opts.After {
					continue
				}
				select {
				case out <- entryEvent(e):
				case <-wctx.Done():
					return
				}
			case <-wctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// lastRevision returns the bucket's latest revision (0 when empty).
func (s *Store) lastRevision(ctx context.Context) (uint64, error) {
	rctx, cancel := s.bound(ctx)
	defer cancel()
	st, err := s.kv.Status(rctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return 0, errors.New("natsstore: bucket status without stream info")
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// Enqueue puts id on the work queue.
func (s *Store) Enqueue(ctx context.Context, id string) error {
	rctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.js.Publish(rctx, s.subj, []byte(id))
	return err
}

// QueueLen returns the number of ids in the queue's stream: a work-queue
// stream keeps a message until it is acknowledged, so this counts waiting
// and claimed ids; see task.Store.
func (s *Store) QueueLen(ctx context.Context) (int, error) {
	rctx, cancel := s.bound(ctx)
	defer cancel()
	info, err := s.queue.Info(rctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}

// Dequeue claims the next queued id; see task.Store.
func (s *Store) Dequeue(ctx context.Context) (task.Claim, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Pull in windows of a few seconds, so that a pull request left at
		// the server by a canceled call expires soon.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := s.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err == nil {
			return &claim{msg: msg, timeout: s.reqTO}, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, jetstream.ErrNoMessages) {
			continue
		}
		return nil, err
	}
}

type claim struct {
	msg     jetstream.Msg
	timeout time.Duration
	once    sync.Once
}

func (c *claim) ID() string { return string(c.msg.Data()) }

func (c *claim) Ack(ctx context.Context) (err error) {
	c.once.Do(func() {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		err = c.msg.DoubleAck(rctx)
	})
	return err
}

func (c *claim) Release(ctx context.Context) (err error) {
	c.once.Do(func() { err = c.msg.Nak() })
	return err
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	rctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.kv.Status(rctx)
	return err
}

// cache is the local copy of the records, for List.
type cache struct {
	mu    sync.RWMutex
	tasks map[string]*task.Task
	revs  map[string]uint64 // also of deleted ids, so an old event cannot revive one
	ids   []string          // present ids, sorted ascending
}

func (c *cache) init() {
	c.tasks = make(map[string]*task.Task)
	c.revs = make(map[string]uint64)
}

func (c *cache) apply(ev task.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Rev <= c.revs[ev.ID] {
		return
	}
	c.revs[ev.ID] = ev.Rev
	_, present := c.tasks[ev.ID]
	i := sort.SearchStrings(c.ids, ev.ID)
	if ev.Deleted {
		if present {
			delete(c.tasks, ev.ID)
			c.ids = append(c.ids[:i], c.ids[i+1:]...)
		}
		return
	}
	c.tasks[ev.ID] = ev.Task
	if !present {
		c.ids = append(c.ids, "")
		copy(c.ids[i+1:], c.ids[i:])
		c.ids[i] = ev.ID
	}
}

func (c *cache) list(opts task.ListOptions, after string) task.Page {
	c.mu.RLock()
	defer c.mu.RUnlock()
	size := opts.Size()
	end := len(c.ids)
	if after != "" {
		end = sort.SearchStrings(c.ids, after)
	}
	var p task.Page
	for i := end - 1; i >= 0; i-- {
		t := c.tasks[c.ids[i]]
		if !opts.Match(t) {
			continue
		}
		if len(p.Tasks) == size {
			p.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(p.Tasks[size-1].ID))
			break
		}
		p.Tasks = append(p.Tasks, t.Clone())
	}
	return p
}
