package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The embedded NATS servers of several taskd processes form one NATS
// cluster when each is given -nats-cluster (its route listen address) and
// -nats-routes (the route addresses of all of them; a node's own address
// in the list is recognized and ignored, so one list fits every node).
// JetStream then runs clustered: its meta group needs a leader, elected by
// a majority of the servers, before any bucket can be created, and a
// bucket of -replicas R needs R servers. startTasks waits for both, up to
// -nats-cluster-wait.

// clusterFlags are the flags of the embedded NATS cluster, part of
// TaskConfig.
type clusterFlags struct {
	Cluster     string        // -nats-cluster: HOST:PORT of the embedded server's route listener; "" means no cluster
	Routes      string        // -nats-routes: comma-separated nats-route:// URLs of the cluster's servers
	ClusterName string        // -nats-cluster-name: the NATS cluster's name, the same on every node
	ClusterWait time.Duration // -nats-cluster-wait: how long startup waits for clustered JetStream
}

// defaultClusterName is the default of -nats-cluster-name.
const defaultClusterName = "taskd"

// defaultClusterWait is the default of -nats-cluster-wait: long enough to
// start the other nodes by hand.
const defaultClusterWait = time.Minute

// clusterPlan is the validated cluster configuration: the route listener,
// the routes and what is known of the cluster's size.
type clusterPlan struct {
	host   string
	port   int
	routes []*url.URL // as given, this node's own address included
	// peers are the routes that are not this node (as far as can be told
	// without DNS): the cluster has len(peers)+1 servers.
	peers []*url.URL
}

// size returns the number of NATS servers in the cluster.
func (p *clusterPlan) size() int { return len(p.peers) + 1 }

// routeList returns the routes as given, comma-separated, for logs and
// errors: passwords in them are shown as "xxxxx".
func (p *clusterPlan) routeList() string {
	s := make([]string, len(p.routes))
	for i, u := range p.routes {
		s[i] = u.Redacted()
	}
	return strings.Join(s, ",")
}

// planCluster validates the cluster flags (with -nats: they exclude each
// other). It returns nil without -nats-cluster. It does not block: a
// route is recognized as this node's own by its port and a literal
// address of this machine or its host name, without DNS.
func (c *TaskConfig) planCluster() (*clusterPlan, error) {
	switch {
	case c.Cluster == "" && c.Routes != "":
		return nil, errors.New("invalid -nats-routes without -nats-cluster: give this node's route address with -nats-cluster HOST:PORT")
	case c.Cluster == "":
		return nil, nil
	case c.NATS != "":
		return nil, errors.New("-nats-cluster and -nats exclude each other: -nats-cluster clusters the embedded NATS servers, -nats uses an existing NATS instead")
	case c.ClusterName == "" || strings.ContainsAny(c.ClusterName, " \t\r\n"):
		return nil, fmt.Errorf("invalid -nats-cluster-name %q: give a name without spaces, the same on every node", c.ClusterName)
	case c.ClusterWait <= 0:
		return nil, fmt.Errorf("invalid -nats-cluster-wait %v: must be positive", c.ClusterWait)
	case strings.ContainsAny(c.Node, " \t\r\n"):
		return nil, fmt.Errorf("invalid -node %q: the embedded NATS server of a cluster takes it as its name, which cannot contain spaces", c.Node)
	}
	host, portStr, err := net.SplitHostPort(c.Cluster)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("invalid -nats-cluster %q: want HOST:PORT, the address this node's NATS server listens on for the other nodes' routes (such as 0.0.0.0:6222)", c.Cluster)
	}
	p := &clusterPlan{host: host, port: port}
	seen := map[string]bool{}
	for r := range strings.SplitSeq(c.Routes, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		u, err := parseRoute(r)
		if err != nil {
			return nil, err
		}
		if seen[u.Host] {
			continue
		}
		seen[u.Host] = true
		p.routes = append(p.routes, u)
		if !p.isSelf(u) {
			p.peers = append(p.peers, u)
		}
	}
	return p, nil
}

// parseRoute parses one route URL: nats-route://HOST:PORT, with a user
// and password if the cluster needs them.
func parseRoute(r string) (*url.URL, error) {
	u, err := url.Parse(r)
	if err == nil && u.Scheme != "nats-route" {
		err = errors.New("want the scheme nats-route://")
	}
	if err == nil && (u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "") {
		err = errors.New("want nats-route://HOST:PORT")
	}
	if err == nil {
		if n, perr := strconv.Atoi(u.Port()); perr != nil || n < 1 || n > 65535 {
			err = errors.New("want a port: nats-route://HOST:PORT")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid route %q in -nats-routes: %v", r, err)
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// isSelf reports whether the route u is this node's own route listener:
// the same port and the same host, or (when the listener is on every
// interface) a loopback address, this machine's host name or one of its
// interfaces' addresses.
func (p *clusterPlan) isSelf(u *url.URL) bool {
	if strconv.Itoa(p.port) != u.Port() {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, p.host) {
		return true
	}
	if ip := net.ParseIP(p.host); p.host != "" && (ip == nil || !ip.IsUnspecified()) {
		return false // listening on one address, which is not h
	}
	if name, err := os.Hostname(); (err == nil && strings.EqualFold(h, name)) || strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// runClusteredServer starts the embedded NATS server as the member node
// of the cluster p, storing JetStream's files in dir. It returns once the
// server accepts client connections; the cluster may not have formed yet
// (see openClusteredStore). Stop it with Shutdown and WaitForShutdown.
func runClusteredServer(p *clusterPlan, name, node, dir string, logger *slog.Logger) (*server.Server, *natsLog, error) {
	opts := &server.Options{
		ServerName: node,
		Host:       "127.0.0.1", // taskd's own connection only
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: name,
			Host: p.host,
			Port: p.port,
			// The client listener is this process's loopback: other
			// nodes' clients must not be told to reconnect to it.
			NoAdvertise: true,
		},
		Routes: p.routes,
		// Clustered JetStream runs its meta group in the system account.
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("nats server: %w", err)
	}
	nl := &natsLog{log: logger.With("component", "nats")}
	ns.SetLoggerV2(nl, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		if err := nl.fatal(); err != nil {
			return nil, nil, fmt.Errorf("nats server: %w", err)
		}
		return nil, nil, errors.New("nats server: not ready for connections within 10s")
	}
	return ns, nl, nil
}

// natsLog passes the embedded server's warnings and errors to taskd's log
// (its notices only at debug level: a dozen lines at every start), each
// distinct message at most once per natsLogRepeat (a server retrying a
// route to a dead peer says so several times a second), and keeps its
// first fatal error, which it reports instead of exiting. It is safe for
// concurrent use.
type natsLog struct {
	log *slog.Logger

	started  atomic.Bool // set once the store is open
	stopping atomic.Bool // set when taskd stops the server

	mu         sync.Mutex
	firstFatal error
	logged     map[string]time.Time // when each message was last logged
}

// attemptNumber matches the retry count in the server's messages.
var attemptNumber = regexp.MustCompile(`\(attempt \d+\)`)

// natsLogRepeat is how often the same message of the server is logged.
const natsLogRepeat = 10 * time.Second

func (l *natsLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLog) Warnf(format string, v ...any) {
	level := slog.LevelWarn
	if !l.started.Load() || l.stopping.Load() {
		// What the server says while the cluster forms (routes not
		// yet there, no meta leader yet, its files recovered) is what
		// a start looks like, the waiting lines say what is missing;
		// and while it stops, what a stop looks like.
		level = slog.LevelInfo
	}
	l.logOnce(level, fmt.Sprintf(format, v...))
}
func (l *natsLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelError
	if strings.HasPrefix(msg, "Error trying to connect to route") {
		level = slog.LevelWarn // a peer not started yet, or down: retried
	}
	l.logOnce(level, msg)
}
func (l *natsLog) Debugf(format string, v ...any) {}
func (l *natsLog) Tracef(format string, v ...any) {}
func (l *natsLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstFatal == nil {
		l.firstFatal = errors.New(msg)
	}
}

func (l *natsLog) logOnce(level slog.Level, msg string) {
	now := time.Now()
	l.mu.Lock()
	if l.logged == nil || len(l.logged) > 1000 {
		l.logged = make(map[string]time.Time)
	}
	// "Error trying to connect to route (attempt 7): …" repeats with
	// a new number every second.
	key := attemptNumber.ReplaceAllString(msg, "(attempt)")
	last, ok := l.logged[key]
	if ok && now.Sub(last) < natsLogRepeat {
		l.mu.Unlock()
		return
	}
	l.logged[key] = now
	l.mu.Unlock()
	l.log.Log(context.Background(), level, msg)
}

// fatal returns the server's first fatal error, or nil.
func (l *natsLog) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstFatal
}

// clusterState is what the embedded server knows of its cluster.
type clusterState struct {
	connected []string // names of the other servers with a route to this one
	leader    string   // the JetStream meta leader's name; "" while there is none
}

func readClusterState(ns *server.Server) clusterState {
	var st clusterState
	if rz, err := ns.Routez(nil); err == nil {
		for _, r := range rz.Routes {
			if name := r.RemoteName; name != "" && !slices.Contains(st.connected, name) {
				st.connected = append(st.connected, name)
			}
		}
	}
	slices.Sort(st.connected)
	if jz, err := ns.Jsz(nil); err == nil && jz.Meta != nil {
		st.leader = jz.Meta.Leader
	}
	return st
}

// describe says what the cluster lacks, for the log and the error of a
// startup that gave up.
func (st clusterState) describe(p *clusterPlan) string {
	leader := "no leader"
	if st.leader != "" {
		leader = "leader " + st.leader
	}
	return fmt.Sprintf("JetStream cluster has %s: %d of %d other servers connected", leader, len(st.connected), len(p.peers))
}

// followerDelay is how long a node that is not JetStream's meta leader
// waits, once there is a leader, before it creates (or opens) the buckets.
const followerDelay = 500 * time.Millisecond

// maxTryTimeout caps the bound of one try to open the store.
const maxTryTimeout = 30 * time.Second

// nextTryTimeout returns the bound of the next try to open the store after
// a try bounded by cur failed with err (and the one before with prev): it
// doubles, up to maxTryTimeout, when the try ran out of time where the one
// before did (a busy disk), not when it got further or failed at once.
func nextTryTimeout(cur time.Duration, err, prev error) time.Duration {
	if prev != nil && err.Error() == prev.Error() && errors.Is(err, context.DeadlineExceeded) {
		return min(2*cur, maxTryTimeout)
	}
	return cur
}

// openClusteredStore opens the store on the embedded server of a cluster:
// it waits for JetStream's meta leader, then creates (or opens) the
// buckets and the queue, trying again while the cluster lacks the servers
// the replicas need. It gives up after wait with an error saying what
// is missing, or when ctx is done. Each change of the cluster's state
// while it waits is logged.
func openClusteredStore(parent context.Context, ns *server.Server, nl *natsLog, nc *nats.Conn, p *clusterPlan, wait time.Duration,
	opts natsstore.Options, logger *slog.Logger) (*natsstore.Store, error) {
	ctx, cancel := context.WithTimeout(parent, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var (
		last       string
		lastErr    error
		tryTimeout = time.Second
		leaderSeen time.Time
	)
	for {
		if err := nl.fatal(); err != nil {
			return nil, fmt.Errorf("nats server: %w", err)
		}
		st := readClusterState(ns)
		if d := st.describe(p); d != last {
			last = d
			logger.Info("waiting for the NATS cluster", "state", d, "connected", strings.Join(st.connected, ","))
		}
		if st.leader != "" && leaderSeen.IsZero() {
			leaderSeen = time.Now()
		}
		// On a new cluster every node creates the same buckets, and a
		// creation racing the same one from another node gets no
		// answer (the next try finds the bucket created). So the meta
		// leader's node goes first; the others give it a moment.
		if st.leader != "" && (st.leader == ns.Name() || time.Since(leaderSeen) >= followerDelay) {
			// Each try is bounded: a try that got no answer, or lost
			// the leader, must not use up the whole wait.
			tried := time.Now()
			tctx, tcancel := context.WithTimeout(ctx, tryTimeout)
			s, err := natsstore.New(tctx, nc, opts)
			tcancel()
			if err == nil {
				nl.started.Store(true)
				return s, nil
			}
			tryTimeout = nextTryTimeout(tryTimeout, err, lastErr)
			if lastErr == nil || err.Error() != lastErr.Error() {
				logger.Info("JetStream not ready yet", "error", err.Error(), "took", time.Since(tried).Round(time.Millisecond).String())
			}
			lastErr = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return nil, err
			}
			msg := fmt.Sprintf("NATS cluster %s not ready after %v (-nats-cluster-wait): %s (routes %s)",
				ns.ClusterName(), wait, readClusterState(ns).describe(p), p.routeList())
			if lastErr != nil {
				return nil, fmt.Errorf("%s; last error: %w", msg, lastErr)
			}
			return nil, errors.New(msg)
		}
	}
}
