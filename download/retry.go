package download

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// The retry policy: which failures are worth another attempt, how many,
// and how long to wait between them.

// maxRetryAfter is the longest Retry-After that is waited for; a server
// asking for more makes its 429/503 final.
const maxRetryAfter = 10 * time.Minute

// maxRedirects is how many redirects one request follows.
const maxRedirects = 10

func (c *Client) idleTimeout() time.Duration { return setting(c.IdleTimeout, DefaultIdleTimeout) }

func (c *Client) retries() int { return setting(c.Retries, DefaultRetries) }

// setting reads a Client field where 0 means def and a negative value
// means none (0).
func setting[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (c *Client) backoff(n int) time.Duration {
	base, top := c.Backoff, c.MaxBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	if top <= 0 {
		top = max(DefaultMaxBackoff, base)
	}
	d := base
	for i := 0; i < n && d < top; i++ {
		d *= 2
	}
	d = min(d, top)
	// "Equal jitter": half fixed, half random, so clients that failed
	// together do not come back together.
	return d/2 + rand.N(d/2+1)
}

// httpClient returns the client to send with. Without a redirect policy
// of the caller's, it is a copy whose policy fails with a *redirectError
// (final, not retried) on a loop or after maxRedirects.
func (c *Client) httpClient() *http.Client {
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	if hc.CheckRedirect != nil {
		return hc
	}
	cp := *hc
	cp.CheckRedirect = checkRedirect
	return &cp
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	for _, v := range via {
		if v.URL.String() == req.URL.String() {
			return &redirectError{"redirect loop (" + RedactURL(req.URL.String()) + " again)"}
		}
	}
	if len(via) >= maxRedirects {
		return &redirectError{"stopped after 10 redirects"}
	}
	return nil
}

// redirectError ends a chain of redirects that cannot succeed.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// fileError is a local I/O error: final, never retried.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// retryable reports whether an attempt that failed with err is worth
// repeating: only what may go away by itself.
func retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.temporary()
	}
	var (
		fe  *fileError
		re  *redirectError
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
		al  tls.AlertError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		dns *net.DNSError
	)
	switch {
	case errors.As(err, &fe), errors.Is(err, ErrLocked), errors.Is(err, ErrBadURL), errors.Is(err, ErrExists),
		errors.As(err, &re),
		// TLS: a certificate that does not verify, a plain-HTTP server
		// on an https:// port, a handshake the server refuses.
		errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &cv), errors.As(err, &rh), errors.As(err, &al),
		errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return false
	case errors.As(err, &dns) && dns.IsNotFound:
		return false
	}
	// Stalls, resets, truncated bodies, refused connections, protocol
	// errors: all may go away.
	return true
}
