package download

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// partMeta is stored as NAME.part.meta beside NAME.part: what the bytes in
// the .part are a prefix of. Without it (or with a different URL, or
// without a validator) a .part is not trusted and starts again from zero.
type partMeta struct {
	Version int `json:"version"`
	// URL is the URL with any password masked: a password is never
	// stored on disk.
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"` // -1 if unknown
	// Name is the final file's name (the .part's may be shortened).
	Name string `json:"name,omitempty"`
	// FromResponse: the name came from the response or the URL, not
	// from the caller; only such a .part is found by URL (findPart).
	FromResponse bool `json:"from_response,omitempty"`
	// Missing, for a segmented download, lists the byte ranges
	// [start, end) not downloaded yet; the .part has the file's full
	// size, with holes. Empty: the .part is a prefix of the file.
	Missing []span `json:"missing,omitempty"`
}

// span is a byte range [Start, End) of the file, stored as HTTP writes
// ranges: "first-last", both included.
type span struct{ Start, End int64 }

func (s span) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatInt(s.Start, 10) + "-" + strconv.FormatInt(s.End-1, 10))
}

func (s *span) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	first, last, ok := strings.Cut(v, "-")
	a, ok1 := parseDigits(first)
	z, ok2 := parseDigits(last)
	if !ok || !ok1 || !ok2 || z == math.MaxInt64 {
		return errContentRange
	}
	s.Start, s.End = a, z+1
	return nil
}

// ifRange is the validator to send in If-Range: the ETag, else
// Last-Modified; "" when there is none and the .part cannot be resumed.
func (m *partMeta) ifRange() string {
	if m.ETag != "" {
		return m.ETag
	}
	return m.LastModified
}

// sameVersion reports whether a response describes the same file as m:
// same ETag (else Last-Modified) and size where both sides know them.
func (m *partMeta) sameVersion(h http.Header, total int64) bool {
	if etag, lm := validator(h); etag != "" && m.ETag != "" && etag != m.ETag ||
		m.ETag == "" && lm != "" && m.LastModified != "" && lm != m.LastModified {
		return false
	}
	return total < 0 || m.Size < 0 || total == m.Size
}

// missingValid reports whether m.Missing describes holes of a file of
// m.Size bytes: sorted, disjoint, non-empty ranges inside it.
func (m *partMeta) missingValid() bool {
	prev := int64(0)
	for _, s := range m.Missing {
		if s.Start < prev || s.End <= s.Start || s.End > m.Size {
			return false
		}
		prev = s.End
	}
	return m.Size > 0
}

const maxMetaSize = 64 << 10

func readMeta(path string) (partMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return partMeta{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return partMeta{}, err
	}
	return parseMeta(b)
}

// parseMeta parses a .part.meta; anything but version 1 with valid
// missing ranges is an error.
func parseMeta(b []byte) (partMeta, error) {
	var m partMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return partMeta{}, err
	}
	if m.Version != 1 || len(m.Missing) > 0 && !m.missingValid() {
		return partMeta{}, os.ErrInvalid
	}
	return m, nil
}

// writeMeta replaces the file at path atomically (write, then rename);
// on failure (a full disk) it leaves no temporary file behind.
func writeMeta(path string, m *partMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o666); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// findPart returns the final path of an earlier, resumable download of
// the URL (shown: as stored, password masked) in dir whose name came from
// the response, or "". The name from the URL is tried first; then every
// *.part.meta in dir, since the name may have come from
// Content-Disposition. A .part whose name was chosen by a caller (Path)
// is another target's: it is left alone.
func findPart(dir, urlName, shown string) string {
	matches := func(metaPath string) (string, bool) {
		m, err := readMeta(metaPath)
		if err != nil || m.URL != shown || !m.FromResponse {
			return "", false
		}
		name, ok := sanitizeName(m.Name)
		if !ok || name != m.Name {
			return "", false
		}
		final := filepath.Join(dir, name)
		return final, partBase(final)+".part.meta" == metaPath
	}
	if urlName != "" {
		if p, ok := matches(partBase(filepath.Join(dir, urlName)) + ".part.meta"); ok {
			return p
		}
	}
	metas, _ := filepath.Glob(filepath.Join(globEscape(dir), "*.part.meta"))
	for _, mp := range metas {
		if p, ok := matches(mp); ok {
			return p
		}
	}
	return ""
}

// globEscape escapes the characters that filepath.Glob treats specially.
func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}
