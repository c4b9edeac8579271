// Package faultnet injects network and process faults for the cluster
// tests: a TCP [Proxy] that can be cut (connections closed, new ones
// refused), blackholed (connections kept, bytes dropped silently) and
// restored, and helpers that check the step log lines of a task cluster
// ([Steps], [Overlaps]).
//
// Everything here is safe for concurrent use; no method blocks longer than
// its doc says.
package faultnet

import (
	"errors"
	"net"
	"sync"
)

// Mode is what a [Proxy] does with traffic.
type Mode int

// The modes of a Proxy.
const (
	// Pass forwards bytes both ways.
	Pass Mode = iota
	// Cut closes every connection and closes new ones at once: the peer
	// sees its connection reset or refused.
	Cut
	// Blackhole keeps connections open and accepts new ones but drops
	// every byte in both directions, as a network partition does: the peer
	// notices only by its own timeouts.
	Blackhole
)

// Proxy forwards TCP connections from its own address on 127.0.0.1 to a
// target address, until its mode says otherwise. Make one with [Listen];
// Close it when done. Its methods are safe for concurrent use.
type Proxy struct {
	ln      net.Listener
	network string
	target  string

	mu    sync.Mutex
	mode  Mode
	links map[*link]struct{}
	done  bool
	wg    sync.WaitGroup
}

type link struct{ a, b net.Conn }

func (l *link) close() {
	l.a.Close()
	l.b.Close()
}

// Listen starts a proxy on 127.0.0.1:0 to target (host:port) in mode Pass.
// It returns once the proxy accepts connections.
func Listen(target string) (*Proxy, error) { return ListenNetwork("tcp", target) }

// ListenNetwork is [Listen] to a target on network ("tcp" or "unix", as
// [net.Dial] takes them): the proxy itself always listens on TCP
// 127.0.0.1:0.
func ListenNetwork(network, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, network: network, target: target, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns "nats://" and the proxy's address.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// SetTarget changes where new connections go (a restarted server on
// another port), on the same network. Existing connections keep theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Set switches the proxy to mode m. Switching to Cut closes every
// connection before Set returns; switching from Blackhole to Pass closes
// the blackholed connections too (their byte streams lost data, so the
// peers must reconnect). Set does not wait for the copying goroutines.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	old := p.mode
	p.mode = m
	var drop []*link
	if m == Cut || (old == Blackhole && m == Pass) {
		for l := range p.links {
			drop = append(drop, l)
			delete(p.links, l)
		}
	}
	p.mu.Unlock()
	for _, l := range drop {
		l.close()
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops the proxy and closes every connection. It blocks until the
// proxy's goroutines have returned and is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.done = true
	links := p.links
	p.links = map[*link]struct{}{}
	p.mu.Unlock()
	err := p.ln.Close()
	for l := range links {
		l.close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, target, done := p.mode, p.target, p.done
		p.mu.Unlock()
		if done || mode == Cut {
			c.Close()
			continue
		}
		up, err := net.Dial(p.network, target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{a: c, b: up}
		p.mu.Lock()
		if p.done || p.mode == Cut {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(l, c, up)
		go p.pipe(l, up, c)
	}
}

// pipe copies from src to dst while the mode is Pass, drops what it reads
// in Blackhole, and closes the link when either side ends.
func (p *Proxy) pipe(l *link, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.Mode() == Pass {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
