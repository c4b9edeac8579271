package cancelhttp

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Canonical names of the inbound timeout headers.
const (
	// ConnectTimeoutHeader carries the Connect protocol's timeout: the
	// number of milliseconds the client is willing to wait.
	ConnectTimeoutHeader = "Connect-Timeout-Ms"
	// GrpcTimeoutHeader carries the gRPC timeout: up to 8 digits and a unit.
	GrpcTimeoutHeader = "Grpc-Timeout"
)

const (
	connectMaxDigits = 10
	grpcMaxDigits    = 8
	connectWant      = "1 to 10 digits (a timeout in milliseconds)"
	grpcWant         = "1 to 8 digits followed by a unit H, M, S, m, u or n (for example 500m or 10S)"
	maxConnectMillis = 9_999_999_999 // ten digits
)

// ParseConnectTimeout parses the value of a Connect-Timeout-Ms header: 1 to
// 10 ASCII digits giving a timeout in milliseconds. No sign, space or other
// character is accepted. Zero is accepted and means the deadline has already
// passed. A malformed value yields a *[HeaderError].
//
// It does not allocate on success and is safe for concurrent use.
func ParseConnectTimeout(v string) (time.Duration, error) {
	if len(v) == 0 || len(v) > connectMaxDigits {
		return 0, &HeaderError{Header: ConnectTimeoutHeader, Value: v, Want: connectWant}
	}
	var ms int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, &HeaderError{Header: ConnectTimeoutHeader, Value: v, Want: connectWant}
		}
		ms = ms*10 + int64(c-'0')
	}
	// Ten digits are at most 9999999999 ms, about 115 days: no overflow.
	return time.Duration(ms) * time.Millisecond, nil
}

// ParseGrpcTimeout parses the value of a Grpc-Timeout header as the gRPC
// over HTTP/2 specification defines it: 1 to 8 ASCII digits followed by one
// unit letter, H (hours), M (minutes), S (seconds), m (milliseconds),
// u (microseconds) or n (nanoseconds). Zero is accepted and means the
// deadline has already passed; a value too large for a [time.Duration]
// (more than about 292 years) saturates at the largest Duration. A
// malformed value yields a *[HeaderError].
//
// It does not allocate on success and is safe for concurrent use.
func ParseGrpcTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > grpcMaxDigits+1 {
		return 0, &HeaderError{Header: GrpcTimeoutHeader, Value: v, Want: grpcWant}
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, &HeaderError{Header: GrpcTimeoutHeader, Value: v, Want: grpcWant}
	}
	var n int64
	for i := 0; i < len(v)-1; i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, &HeaderError{Header: GrpcTimeoutHeader, Value: v, Want: grpcWant}
		}
		n = n*10 + int64(c-'0')
	}
	if n > math.MaxInt64/int64(unit) {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(n) * unit, nil
}

// formatConnectTimeout renders d as a Connect-Timeout-Ms value: whole
// milliseconds rounded down, but at least 1 so that a live deadline is never
// sent as an expired one. It reports false when d does not fit in ten
// digits (about 115 days), in which case no header should be sent.
func formatConnectTimeout(d time.Duration) (string, bool) {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if ms > maxConnectMillis {
		return "", false
	}
	return strconv.FormatInt(ms, 10), true
}

// inboundTimeout is the timeout the client asked for in h, capped by max
// (0: no cap). ok is false when neither header is present. When both are,
// the shorter wins. The returned DeadlineError is the cause to use when the
// timeout expires.
func inboundTimeout(h http.Header, max time.Duration) (d *DeadlineError, err error) {
	// Direct map access: the keys are canonical already, and Header.Get
	// would canonicalize them again on every request.
	if vs := h[ConnectTimeoutHeader]; len(vs) > 0 {
		t, err := ParseConnectTimeout(vs[0])
		if err != nil {
			return nil, err
		}
		d = &DeadlineError{Header: ConnectTimeoutHeader, Value: vs[0], Timeout: t}
	}
	if vs := h[GrpcTimeoutHeader]; len(vs) > 0 {
		t, err := ParseGrpcTimeout(vs[0])
		if err != nil {
			return nil, err
		}
		if d == nil || t < d.Timeout {
			d = &DeadlineError{Header: GrpcTimeoutHeader, Value: vs[0], Timeout: t}
		}
	}
	if d != nil && max > 0 && d.Timeout > max {
		d.Timeout = max
		d.Capped = true
	}
	return d, nil
}
