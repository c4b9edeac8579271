package download

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// contentRange is a parsed Content-Range header of a byte range.
// For the unsatisfied form "bytes */TOTAL", Start and End are -1.
// Total is -1 when the server wrote "*" (unknown length).
type contentRange struct {
	Start, End, Total int64
}

var errContentRange = errors.New("malformed Content-Range")

// parseContentRange parses a Content-Range header value (RFC 9110, 14.4):
//
//	bytes 0-499/1234
//	bytes 500-999/*
//	bytes */1234
//
// It is strict: decimal digits only, no signs, no overflow, Start <= End,
// End < Total when Total is known. Anything else is an error.
func parseContentRange(s string) (contentRange, error) {
	bad := contentRange{}
	unit, rest, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad, errContentRange
	}
	rest = strings.TrimLeft(rest, " ")
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad, errContentRange
	}
	cr := contentRange{Start: -1, End: -1, Total: -1}
	if total != "*" {
		n, ok := parseDigits(total)
		if !ok {
			return bad, errContentRange
		}
		cr.Total = n
	}
	if rng == "*" {
		if cr.Total < 0 {
			return bad, errContentRange // "bytes */*" says nothing
		}
		return cr, nil
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad, errContentRange
	}
	var ok1, ok2 bool
	cr.Start, ok1 = parseDigits(first)
	cr.End, ok2 = parseDigits(last)
	if !ok1 || !ok2 || cr.Start > cr.End || (cr.Total >= 0 && cr.End >= cr.Total) {
		return bad, errContentRange
	}
	return cr, nil
}

// parseDigits parses a non-empty run of ASCII digits that fits in an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// contentDispositionName returns the sanitized file name suggested by a
// Content-Disposition header value ("attachment; filename=x.zip", with
// RFC 5987 "filename*=UTF-8”x.zip" preferred), or false when the header
// has none that is safe to use.
func contentDispositionName(header string) (string, bool) {
	if header == "" {
		return "", false
	}
	_, params, err := mime.ParseMediaType(header)
	if err != nil {
		return "", false
	}
	// mime.ParseMediaType decodes filename* and stores it as "filename".
	name, ok := params["filename"]
	if !ok {
		return "", false
	}
	return sanitizeName(name)
}

// urlName returns the sanitized last segment of the URL's path, or false
// when there is none (for example "https://example.com/").
func urlName(u *url.URL) (string, bool) {
	p := u.Path
	if p == "" || strings.HasSuffix(p, "/") {
		return "", false
	}
	return sanitizeName(path.Base(p))
}

// sanitizeName turns a name suggested by a server into a plain file name
// that cannot leave the target directory: the last element of either kind
// of slash, without control characters, leading dots or spaces, trailing
// dots or spaces, never "." or "..", at most maxNameLen bytes with the
// extension kept. It reports false when nothing usable is left.
func sanitizeName(name string) (string, bool) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	// A leading dot would make a hidden file (".bashrc", ".profile"):
	// never let a server choose one.
	name = strings.TrimLeft(name, ". ")
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return "", false
	}
	return truncateName(name, maxNameLen), true
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date. It returns 0, false when the header is absent or malformed.
// A date in the past is a delay of zero.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, ok := parseDigits(v); ok {
		if n > int64(maxRetryAfter/time.Second)*1000 {
			n = int64(maxRetryAfter/time.Second) * 1000 // avoid overflow; still "too long"
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// validator returns the value to send in If-Range for a response: a strong
// ETag, else Last-Modified, else "". Weak ETags (W/"...") must not be
// used in If-Range (RFC 9110, 13.1.5).
func validator(h http.Header) (etag, lastModified string) {
	etag = h.Get("Etag")
	if strings.HasPrefix(etag, "W/") {
		etag = ""
	}
	lastModified = h.Get("Last-Modified")
	if lastModified != "" {
		if _, err := http.ParseTime(lastModified); err != nil {
			lastModified = ""
		}
	}
	return etag, lastModified
}
