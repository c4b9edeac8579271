package tasks

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a broker that can cut every
// connection through it and refuse new ones ([Proxy.Cut]) until
// [Proxy.Restore]: a worker behind it is disconnected from its broker while
// everything else still reaches the broker. Safe for concurrent use.
type Proxy struct {
	ln   net.Listener
	up   Broker
	wg   sync.WaitGroup
	mu   sync.Mutex
	cut  bool
	live map[net.Conn]struct{}
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to up.
// It owns a goroutine per connection until [Proxy.Close].
func NewProxy(up Broker) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, up: up, live: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Broker is the proxy's own address.
func (p *Proxy) Broker() Broker { return Broker{"tcp", p.ln.Addr().String()} }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c unless the proxy is cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.live[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.live, c)
		c.Close()
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := p.up.Dial(context.Background())
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		p.untrack(c, up)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	p.untrack(c, up) // unblocks the other direction
	<-done
}

// Cut closes every connection through the proxy and closes new ones at
// once until [Proxy.Restore]. Does not block.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.live {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
