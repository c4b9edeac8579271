package natsstore

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Connect connects to the NATS server (or cluster) at url as a task node
// named name: it reconnects forever after a loss (every 100 ms with a little jitter, so a restarted server is
// rejoined at once), and notices a silent network (a ping every second,
// the connection dropped after three unanswered). Publishes made while
// reconnecting are buffered. opts are applied after these and override
// them. Connect blocks until the first connection is made or failed.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(20*time.Millisecond, 20*time.Millisecond),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(2 * time.Second),
	}
	return nats.Connect(url, append(base, opts...)...)
}
