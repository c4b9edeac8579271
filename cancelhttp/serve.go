package cancelhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Default durations of [Serve]'s shutdown.
const (
	DefaultGracePeriod = 10 * time.Second
	DefaultStopTimeout = 5 * time.Second
)

// A ServeOption configures [Serve].
type ServeOption interface{ applyServe(*serveConfig) }

type serveConfig struct {
	grace, stop time.Duration
	logger      *slog.Logger
}

type serveOptionFunc func(*serveConfig)

func (f serveOptionFunc) applyServe(c *serveConfig) { f(c) }

// WithGracePeriod sets how long in-flight requests may keep running, with
// live tokens, once shutdown has begun ([DefaultGracePeriod] without this
// option). d <= 0 cancels them as soon as shutdown begins.
func WithGracePeriod(d time.Duration) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.grace = max(d, 0) })
}

// WithStopTimeout sets how long Serve waits for handlers to return after
// their tokens were canceled ([DefaultStopTimeout] without this option).
// d <= 0 means Serve closes the connections of handlers still running at
// once.
func WithStopTimeout(d time.Duration) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.stop = max(d, 0) })
}

// WithServeLogger sets the logger that receives Serve's few records (shutdown
// started, grace period over, shutdown finished). Without this option, or
// with nil, [slog.Default] is used.
func WithServeLogger(l *slog.Logger) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.logger = l })
}

// Serve serves HTTP on ln with srv until ctx is done, then shuts down
// gracefully:
//
//  1. it stops accepting connections and closes idle ones
//     ([http.Server.Shutdown]); in-flight requests keep running with live
//     contexts for the grace period ([WithGracePeriod]);
//  2. when the grace period is over and requests are still running, it
//     cancels every request context with cause [ErrServerShutdown], so
//     handlers return early (with [Handler], r.Context() is canceled with
//     that cause; without it, the net/http request context is);
//  3. it waits up to the stop timeout ([WithStopTimeout]) for those
//     handlers to return and their responses to be written, then closes
//     the remaining connections and returns [ErrStopTimeout].
//
// A response being written when shutdown begins is never cut off before the
// stop timeout. Serve returns nil after a clean shutdown, and at once with
// the error of [http.Server.Serve] if serving fails before ctx is done (or
// [http.ErrServerClosed] if somebody else shut srv down). It serves TLS,
// with srv.TLSConfig's certificates, when srv.TLSConfig is set.
//
// Serve links request contexts to shutdown through srv.BaseContext, which it
// replaces: the base context becomes a context whose values are those of
// the previous srv.BaseContext(ln) if it was set, or of ctx otherwise, and
// which is also canceled when that previous base context is. Linking costs
// no goroutine per connection.
//
// Serve logs, through the [WithServeLogger] logger, the requests that
// net/http answers itself without calling the handler (a malformed request,
// 400; headers over http.Server.MaxHeaderBytes, 431; an unsupported
// Transfer-Encoding, 501; other protocol errors) and the connections it
// closes because a request's headers or body did not arrive within
// ReadHeaderTimeout or ReadTimeout (logged as 408, though nothing is sent).
// These records have msg "request", rejected_by "net/http", the status, the
// bytes sent and the error net/http gave; they are not written for TLS
// servers. Serve takes
// ownership of srv and ln; srv must not be started elsewhere. Serve blocks
// until the server has stopped, and every goroutine it started has
// returned.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, opts ...ServeOption) error {
	cfg := serveConfig{grace: DefaultGracePeriod, stop: DefaultStopTimeout}
	for _, o := range opts {
		o.applyServe(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}

	var parent context.Context
	if srv.BaseContext != nil {
		parent = srv.BaseContext(ln)
		if parent == nil {
			panic("cancelhttp: BaseContext returned a nil context")
		}
	} else {
		parent = context.WithoutCancel(ctx)
	}
	// A context.WithCancelCause context, not a Token: net/http wraps the
	// base context in value contexts before it derives each connection's
	// context with context.WithCancel, and the context package attaches such
	// a child without a goroutine only when it finds a *cancelCtx with the
	// same done channel below the values. A Token (or any other context
	// type) there costs one watcher goroutine per connection.
	base, cancelBase := context.WithCancelCause(parent)
	defer cancelBase(ErrServerShutdown)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	if srv.TLSConfig == nil {
		ln = &watchListener{Listener: ln, log: cfg.logger}
		// Handler finds the connection here (see watchConn.sentContentLength).
		prev := srv.ConnContext
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if prev != nil {
				ctx = prev(ctx, c)
			}
			if wc, ok := c.(*watchConn); ok {
				ctx = context.WithValue(ctx, connKey{}, wc)
				wc.ctx = ctx
			}
			return ctx
		}
	}

	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log := cfg.logger
	log.LogAttrs(context.Background(), slog.LevelInfo, "shutting down",
		slog.Any("cause", context.Cause(ctx)), slog.String("grace", cfg.grace.String()))
	start := time.Now()

	// Phase 1: the grace period, with live request contexts.
	// Shield: bounded cleanup after ctx ended (it already has, so the
	// budget starts now); its cause names the budget and ctx's cause.
	graceTok, releaseGrace := cancellation.Shield(ctx, cfg.grace)
	err := srv.Shutdown(graceTok)
	releaseGrace()
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		// Phase 2: cancel the requests and wait for their handlers. A new
		// Shutdown call polls from 1ms again (the first one had backed off
		// to 500ms), so the stop is noticed promptly.
		log.LogAttrs(context.Background(), slog.LevelInfo, "grace period over, canceling in-flight requests",
			slog.String("stop_timeout", cfg.stop.String()))
		cancelBase(ErrServerShutdown)
		stopTok, releaseStop := cancellation.Shield(base, cfg.stop)
		err = srv.Shutdown(stopTok)
		releaseStop()
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			srv.Close()
			<-served
			log.LogAttrs(context.Background(), slog.LevelError, "handlers did not stop; connections closed",
				slog.String("stop_timeout", cfg.stop.String()))
			return fmt.Errorf("%w (stop timeout %v)", ErrStopTimeout, cfg.stop)
		}
	}
	<-served // http.ErrServerClosed, returned as soon as Shutdown began
	log.LogAttrs(context.Background(), slog.LevelInfo, "shut down", milliseconds("took_ms", time.Since(start)))
	if err != nil {
		// Closing the listener failed; the server has stopped all the same.
		return fmt.Errorf("cancelhttp: closing listener: %w", err)
	}
	return nil
}
