package download

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadURL is matched (errors.Is) by the error of [ParseURL] and by a
// [Client.Do] refused for its URL: a usage error, never retried.
var ErrBadURL = errors.New("not a valid http or https URL")

// ParseURL parses raw as [Client.Do] does: an absolute http or https URL
// with a host and, if any, a port from 1 to 65535. The error matches
// [ErrBadURL] and never shows a password that raw contains. It does not
// block and is safe for concurrent use.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, badURL(raw, "")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, badURL(raw, "the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, badURL(raw, "no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, badURL(raw, "port "+p+" is not between 1 and 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, badURL(raw, "empty port")
	}
	return u, nil
}

func badURL(raw, why string) error {
	if why == "" {
		return fmt.Errorf("%q: %w", RedactURL(raw), ErrBadURL)
	}
	return fmt.Errorf("%q: %w: %s", RedactURL(raw), ErrBadURL, why)
}

// RedactURL returns raw with the password of its user information
// replaced by "xxxxx", as [url.URL.Redacted] does, for showing and
// storing; raw itself when it has none. A string that does not parse is
// masked between "://" and the last "@" of its authority. It does not
// block and is safe for concurrent use.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	if u, err := url.Parse(raw); err == nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		if u.User != nil || u.Host != "" {
			return raw
		}
	}
	// Unparsable: mask the whole user information.
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	auth, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth, path = rest[:i], rest[i:]
	}
	i := strings.LastIndex(auth, "@")
	if i < 0 {
		return raw
	}
	user, _, _ := strings.Cut(auth[:i], ":")
	return scheme + user + ":xxxxx" + auth[i:] + path
}
