package download

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Defaults used for zero fields of a [Client].
const (
	DefaultIdleTimeout = 30 * time.Second
	DefaultRetries     = 3
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultBufferSize  = 256 << 10
)

// Client downloads files. The zero value is ready to use, with the
// defaults above. A Client is safe for use by many goroutines at once,
// provided its fields are not changed while a download runs.
type Client struct {
	// HTTPClient sends the requests; nil means [http.DefaultClient].
	// Its Timeout, if any, bounds every attempt, so leave it zero and use
	// Timeout and IdleTimeout instead.
	HTTPClient *http.Client

	// Timeout bounds one download as a whole: every attempt and every
	// wait between attempts. Zero means no bound. When it expires the
	// error is a [*TimeoutError] and the .part is kept.
	Timeout time.Duration

	// IdleTimeout cancels an attempt that has received no bytes (headers
	// or body) for that long; the attempt fails with a [*StallError] and
	// is retried. Zero means [DefaultIdleTimeout]; negative disables it.
	IdleTimeout time.Duration

	// Retries is how many times a failed attempt is retried (stalls,
	// dropped connections, truncated bodies, 5xx, 408, 429). The count
	// starts again whenever an attempt gets further into the file than
	// any before it, so a long download on a flaky link still finishes.
	// Zero means [DefaultRetries]; negative means no retries.
	Retries int

	// Backoff is the wait before the first retry, doubled for each
	// further one up to MaxBackoff, with random jitter (the wait is
	// between half and all of that). A Retry-After sent with a 429 or
	// 503 is honoured when longer. Zero means [DefaultBackoff] and
	// [DefaultMaxBackoff].
	Backoff, MaxBackoff time.Duration

	// BufferSize is the size of the buffer a connection streams through;
	// memory use does not grow with the file (one buffer per connection).
	// Zero means [DefaultBufferSize].
	BufferSize int

	// UserAgent is sent as User-Agent when not empty.
	UserAgent string

	// RateLimit, when positive, limits each download to that many bytes
	// per second (all its connections together).
	RateLimit int64

	// Split is the number of connections one download may use at once:
	// with 2 or more, a file of known size from a server that honours
	// Range with a validator is fetched in segments, each over its own
	// connection, into the same .part (see the package doc). 0 and 1
	// mean one connection.
	Split int
}

// Request describes one download for [Client.Do]. Do does not modify it.
type Request struct {
	URL string // http or https; see [ParseURL]

	// Path is the final file. When it is empty, the file is created in
	// Dir with the name from the response's Content-Disposition, else the
	// last segment of the URL's path, else "index.html"; a name from the
	// server is reduced to a plain file name and never leaves Dir. A Path
	// that is a directory is refused before any request.
	Path string
	Dir  string // used when Path is empty; "" is the current directory

	// Output, when not nil, receives the file instead of Path or Dir: no
	// .part is written, nothing is kept for a later call, and a restart
	// from zero after bytes were written is an error. A dropped
	// connection is still resumed within the call (Range with If-Range).
	Output io.Writer

	// Names, when not nil, is shared by the downloads of one run: a name
	// chosen from the response that another download of the run already
	// claimed gets a suffix (NAME.1, NAME.2, ...), so no download
	// overwrites a file saved by another. See [Names].
	Names *Names

	// NoClobber refuses to replace an existing final file: Do fails with
	// [ErrExists] before any request when Path, or the name the URL
	// gives in Dir, exists (as wget -nc does), else when the response
	// names an existing file; the check is repeated atomically at the
	// rename.
	NoClobber bool

	// SHA256, when not nil, is the expected digest (32 bytes) of the whole
	// file. A mismatch leaves neither the final file nor the .part.
	SHA256 []byte

	// Header holds extra request headers (Authorization, Cookie...).
	// Range, If-Range and Accept-Encoding are set by Do.
	Header http.Header

	// Progress, when not nil, is called for every [Event]: once per chunk
	// of data, so it must be quick and must not block; hand the numbers
	// to another goroutine to draw them. With [Client.Split], calls come
	// from several goroutines, but never two at once.
	Progress func(Event)
}

// Result describes a finished download.
type Result struct {
	URL      string // Request.URL with any password masked
	Path     string // the final file; "" when written to Request.Output
	Size     int64  // its size in bytes
	Resumed  int64  // bytes kept from an earlier attempt or run, not downloaded again
	Attempts int    // HTTP requests made
	SHA256   []byte // the verified digest, when Request.SHA256 was set
	// Renamed reports that the name chosen from the response was taken
	// by another download of the run (see [Request.Names]): Path has a
	// suffix.
	Renamed bool
}

// EventKind tells what an [Event] reports.
type EventKind int

const (
	// Started: a response was accepted and data is about to flow into
	// the .part. Offset is the number of bytes kept from before (0 when
	// starting from zero); Total is the file size, -1 if unknown. Err,
	// when not nil, says why bytes kept from before were dropped (the
	// server ignored Range, the file changed): a restart from zero.
	Started EventKind = iota + 1
	// Received: Written bytes are now in the .part.
	Received
	// Retrying: the attempt failed with Err; the next starts after Wait.
	Retrying
)

// Event is a progress report passed to [Request.Progress].
type Event struct {
	Kind     EventKind
	URL      string // Request.URL with any password masked
	Path     string // the final file; for Retrying it may be "" when no name was chosen yet
	Attempt  int    // 1 for the first request
	Offset   int64  // Started: bytes kept from before
	Written  int64  // bytes in the .part so far
	Total    int64  // expected size, -1 if unknown
	Err      error  // Retrying: why the attempt failed; Started: why it starts from zero
	Wait     time.Duration
	Segments int // Started: connections in use (1 unless Client.Split)
}

// Get downloads url to path with a zero [Client] (so [http.DefaultClient]
// and the defaults): see [Client.Do]. It blocks until the download
// finished, failed or ctx is done.
func Get(ctx context.Context, url, path string) (*Result, error) {
	var c Client
	return c.Do(ctx, &Request{URL: url, Path: path})
}

// Get downloads url to path: see [Client.Do].
func (c *Client) Get(ctx context.Context, url, path string) (*Result, error) {
	return c.Do(ctx, &Request{URL: url, Path: path})
}

// Do downloads r.URL into the file r.Path (or a name chosen in r.Dir),
// resuming a .part left by an earlier call. It blocks until the file is
// complete, the download failed, or ctx is done; it returns within
// milliseconds of ctx being done (unless the final fsync has begun: it is
// not interrupted), with an error that matches ctx.Err() and
// context.Cause(ctx) (errors.Is). Every error is an [*Error].
//
// On success the final file has been fsynced and renamed into place and
// its directory fsynced. On failure the final file is untouched; the
// .part and its validator (the .part.meta) are kept when they can be
// resumed ([Error.Kept] > 0) and removed otherwise.
//
// Do starts no goroutine that outlives it. Two downloads to the same file
// at once, in one process or two, fail with [ErrLocked] (where the
// platform has flock).
func (c *Client) Do(ctx context.Context, r *Request) (*Result, error) {
	shown := RedactURL(r.URL)
	j := &job{c: c, r: r, ctx: ctx, total: -1, shown: shown}
	if err := j.validate(); err != nil {
		return nil, &Error{URL: shown, Path: r.Path, Err: err}
	}
	src := cancellation.New(ctx)
	defer src.Cancel()
	if c.Timeout > 0 {
		src.CancelAfter(c.Timeout)
	}
	j.tok = src.Token()
	res, err := j.run()
	var kept int64
	if err != nil && j.resumable() {
		kept = j.written
	}
	j.close()
	if err != nil {
		return nil, &Error{URL: shown, Path: j.path, Kept: kept, Err: err}
	}
	return res, nil
}
