package download

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// partMeta is stored as NAME.part.meta beside NAME.part: what the bytes in
// the .part are a prefix of. Without it (or with a different URL, or
// without a validator) a .part is not trusted and starts again from zero.
type partMeta struct {
	Version      int    `json:"version"`
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"` // -1 if unknown
}

// ifRange is the validator to send in If-Range: the ETag, else
// Last-Modified; "" when there is none and the .part cannot be resumed.
func (m *partMeta) ifRange() string {
	if m.ETag != "" {
		return m.ETag
	}
	return m.LastModified
}

// sameVersion reports whether a 206 answering a resume describes the same
// file as m: same ETag and size where both sides know them.
func (m *partMeta) sameVersion(h http.Header, total int64) bool {
	if etag, lm := validator(h); etag != "" && m.ETag != "" && etag != m.ETag ||
		m.ETag == "" && lm != "" && m.LastModified != "" && lm != m.LastModified {
		return false
	}
	return total < 0 || m.Size < 0 || total == m.Size
}

const maxMetaSize = 64 << 10

func readMeta(path string) (partMeta, error) {
	var m partMeta
	f, err := os.Open(path)
	if err != nil {
		return m, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return partMeta{}, err
	}
	if m.Version != 1 {
		return partMeta{}, os.ErrInvalid
	}
	return m, nil
}

// writeMeta replaces the file at path atomically (write, then rename).
func writeMeta(path string, m *partMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o666); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// findPart returns the final path of an earlier, resumable download of
// rawURL in dir, or "". The name from the URL is tried first; then every
// *.part.meta in dir, since the name may have come from
// Content-Disposition.
func findPart(dir string, u *url.URL, rawURL string) string {
	matches := func(final string) bool {
		m, err := readMeta(final + ".part.meta")
		return err == nil && m.URL == rawURL
	}
	if name, ok := urlName(u); ok {
		if p := filepath.Join(dir, name); matches(p) {
			return p
		}
	}
	metas, _ := filepath.Glob(filepath.Join(globEscape(dir), "*.part.meta"))
	for _, mp := range metas {
		p := strings.TrimSuffix(mp, ".part.meta")
		if _, ok := sanitizeName(filepath.Base(p)); ok && matches(p) {
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
