package download_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-cancellation/cancellation/download"
)

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-499/1234", 0, 499, 1234, true},
		{"bytes 500-1233/1234", 500, 1233, 1234, true},
		{"bytes 500-999/*", 500, 999, -1, true},
		{"bytes */1234", -1, -1, 1234, true},
		{"BYTES 1-1/2", 1, 1, 2, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 0-1234/1234", 0, 0, 0, false}, // end beyond total
		{"bytes 5-4/10", 0, 0, 0, false},
		{"bytes -1-4/10", 0, 0, 0, false},
		{"bytes +1-4/10", 0, 0, 0, false},
		{"bytes 0-4/-10", 0, 0, 0, false},
		{"bytes */*", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/1", 0, 0, 0, false},
		{"items 0-4/10", 0, 0, 0, false},
		{"bytes=0-4/10", 0, 0, 0, false},
		{"bytes 0-4", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, e, n, err := download.ParseContentRange(tc.in)
			if (err == nil) != tc.ok || tc.ok && (s != tc.start || e != tc.end || n != tc.total) {
				t.Errorf("= %d, %d, %d, %v", s, e, n, err)
			}
		})
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-499/1234", "bytes 500-999/*", "bytes */1234", "bytes 0-0/1", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, err := download.ParseContentRange(s)
		if err != nil {
			return
		}
		if start == -1 {
			if end != -1 || total < 0 {
				t.Fatalf("%q: unsatisfied form %d-%d/%d", s, start, end, total)
			}
			return
		}
		if start < 0 || end < start || total < -1 || total >= 0 && end >= total {
			t.Fatalf("%q: inconsistent %d-%d/%d", s, start, end, total)
		}
		// Round trip: a canonical rendering parses to the same values.
		tot := "*"
		if total >= 0 {
			tot = fmt.Sprint(total)
		}
		s2 := fmt.Sprintf("bytes %d-%d/%s", start, end, tot)
		a, b, c, err := download.ParseContentRange(s2)
		if err != nil || a != start || b != end || c != total {
			t.Fatalf("%q -> %q -> %d %d %d %v", s, s2, a, b, c, err)
		}
	})
}

func TestContentDispositionName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`attachment; filename="a.zip"`, "a.zip"},
		{`attachment; filename=a.zip`, "a.zip"},
		{`inline; filename="a b.txt"`, "a b.txt"},
		{`attachment; filename*=UTF-8''%E2%82%AC%20rates.csv`, "€ rates.csv"},
		{`attachment; filename="fallback.txt"; filename*=UTF-8''real.txt`, "real.txt"},
		{`attachment; filename="../../etc/passwd"`, "passwd"},
		{`attachment; filename="..\\..\\windows\\system.ini"`, "system.ini"},
		{`attachment; filename="/abs/path"`, "path"},
		{`attachment; filename=".."`, ""},
		{`attachment; filename="."`, ""},
		{`attachment; filename=".hidden"`, "hidden"},
		{`attachment; filename="a\u0000b"`, ""}, // malformed: rejected by the parser or stripped
		{`attachment`, ""},
		{``, ""},
		{`attachment; filename=""`, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := download.ContentDispositionName(tc.in)
			if tc.want == "" {
				if ok && strings.ContainsAny(got, "/\\\x00") {
					t.Errorf("= %q, unsafe", got)
				}
				if ok && tc.in != `attachment; filename="a\u0000b"` {
					t.Errorf("= %q, want none", got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Errorf("= %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func FuzzContentDispositionName(f *testing.F) {
	for _, s := range []string{
		`attachment; filename="a.zip"`,
		`attachment; filename*=UTF-8''%E2%82%AC%20rates.csv`,
		`attachment; filename="../../etc/passwd"`,
		`attachment; filename=".."`,
		`inline; filename*0="a"; filename*1="b.txt"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, ok := download.ContentDispositionName(s)
		if !ok {
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") ||
			strings.HasPrefix(name, ".") || len(name) > 255 || !utf8.ValidString(name) {
			t.Fatalf("%q -> unsafe name %q", s, name)
		}
		for _, r := range name {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("%q -> control character in %q", s, name)
			}
		}
	})
}

func TestSanitizeNameLong(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300) + ".tar.gz"
	got, ok := download.SanitizeName(long)
	if !ok || len(got) > 255 || !strings.HasSuffix(got, ".gz") || !utf8.ValidString(got) {
		t.Errorf("= %q (%d bytes)", got, len(got))
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{" 5 ", 5 * time.Second, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true}, // in the past
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := download.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseMeta: a .part.meta from disk (perhaps damaged) either fails
// to parse or describes sorted, disjoint, non-empty ranges inside the
// file.
func FuzzParseMeta(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"url":"http://a/b","etag":"\"v\"","size":100,"name":"b","from_response":true,"missing":["10-19","50-99"]}`,
		`{"version":1,"url":"http://a/b","size":-1}`,
		`{"version":1,"size":10,"missing":["5-4"]}`,
		`{"version":1,"size":10,"missing":["0-9223372036854775807"]}`,
		`{"version":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		missing, size, err := download.ParseMeta(b)
		if err != nil {
			return
		}
		prev := int64(0)
		for _, m := range missing {
			if m[0] < prev || m[1] <= m[0] || m[1] > size {
				t.Fatalf("%q: ranges %v of a %d-byte file", b, missing, size)
			}
			prev = m[1]
		}
	})
}
