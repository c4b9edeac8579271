package tasks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnavailable means a peer's broker is not configured or not reachable;
// benchmarks skip the peer.
var ErrUnavailable = errors.New("tasks: peer unavailable")

// Behavior says what a submitted task does when it runs.
type Behavior int

const (
	// Noop returns at once and reports [Events.Done].
	Noop Behavior = iota
	// Block reports [Events.Running], waits until its context or token is
	// canceled, reports [Events.Canceled] and returns.
	Block
)

// Events receives what the worker side of a [Node] observes. Each method
// takes a [Mono] timestamp; implementations are safe for concurrent use and
// do not block.
type Events interface {
	Running(id string, at int64)
	Canceled(id string, at int64, cause string)
	Done(id string, at int64)
}

// Options configure [Peer.Open].
type Options struct {
	// Broker is where the node connects: the peer's broker or a TCP proxy
	// in front of it.
	Broker Broker
	// Queue isolates one measurement's tasks from the others' (a queue or
	// stream subject name: lower-case letters, digits and '_').
	Queue string
	// Workers is the number of tasks the node runs at once; 0 makes a node
	// that only submits and cancels.
	Workers int
	// Events receives the worker side's observations; required when
	// Workers > 0.
	Events Events
}

// Peer is one task system.
type Peer interface {
	// Name is the system's short name ("river", "asynq", "taskd").
	Name() string
	// Setup checks (or starts) the system's broker, prepares it (schema
	// migrations) and returns its address and a function that releases
	// what Setup started. It returns an error wrapping [ErrUnavailable]
	// when the broker is not configured or not reachable. Blocks; called
	// once per process.
	Setup(ctx context.Context) (Broker, func(), error)
	// Open connects a node to the broker. Blocks until the node's workers
	// (if any) are started.
	Open(ctx context.Context, opts Options) (Node, error)
}

// Node submits and cancels tasks and, when opened with workers, runs them.
// Methods are safe for concurrent use.
type Node interface {
	// Submit enqueues one task and returns its id. Blocks until the
	// system accepted it.
	Submit(ctx context.Context, b Behavior) (string, error)
	// Cancel asks the system to cancel the task with id, wherever it runs.
	// It returns once the system accepted the request, not when the task
	// stopped.
	Cancel(ctx context.Context, id string) error
	// BrokerBytes is the broker's storage (or memory) in use, for the
	// memory per queued task.
	BrokerBytes(ctx context.Context) (int64, error)
	// Close stops the node's workers and disconnects. Tasks still running
	// are canceled.
	Close() error
}

// Broker is a network address: Network "unix" (a socket path) or "tcp".
type Broker struct {
	Network, Addr string
}

// ParseBroker parses "unix:/path" or "tcp:host:port" (a bare "host:port" is
// tcp).
func ParseBroker(s string) (Broker, error) {
	network, addr, ok := strings.Cut(s, ":")
	switch {
	case ok && network == "unix" && addr != "":
		return Broker{"unix", addr}, nil
	case ok && network == "tcp" && addr != "":
		return Broker{"tcp", addr}, nil
	}
	if _, port, err := net.SplitHostPort(s); err == nil && port != "" && network != "unix" && network != "tcp" {
		return Broker{"tcp", s}, nil
	}
	return Broker{}, fmt.Errorf("tasks: broker address %q: want unix:/path or tcp:host:port", s)
}

// String is the form [ParseBroker] reads.
func (b Broker) String() string { return b.Network + ":" + b.Addr }

// Dial connects to the broker.
func (b Broker) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, b.Network, b.Addr)
}

// Mono is the CLOCK_MONOTONIC reading in nanoseconds; readings of different
// processes on one machine are comparable.
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("cancellation: clock_gettime: " + err.Error())
	}
	return ts.Nano()
}

// Since is the time from the [Mono] reading t0 to t1.
func Since(t0, t1 int64) time.Duration { return time.Duration(t1 - t0) }

// Peers lists every system the harness knows, River first (the reference
// of the ratios).
func Peers() []Peer { return append([]Peer{River{}, Asynq{}}, extraPeers...) }

// extraPeers holds the systems added by other files of this package.
var extraPeers []Peer

// PeerByName finds a peer of [Peers] by its name.
func PeerByName(name string) (Peer, error) {
	for _, p := range Peers() {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("tasks: unknown system %q", name)
}
