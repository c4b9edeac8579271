package download

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"unicode/utf8"
)

// File names: the final name, the names derived from it on disk, and
// the names claimed by the downloads of one run.

// maxNameLen is the longest file name the usual file systems accept
// (bytes): ext4, xfs, btrfs, tmpfs, APFS.
const maxNameLen = 255

// longestSuffix is the longest suffix added to a final name on disk.
const longestSuffix = len(".part.meta.tmp")

// ErrExists is returned, with [Request.NoClobber], when the final file
// already exists.
var ErrExists = errors.New("file exists (not replaced)")

// Names is the set of final files claimed by the downloads of one run
// (see [Request.Names]): it keeps two of them from writing one file. The
// zero value is empty and ready; it is safe for concurrent use and never
// blocks for long (one mutex).
type Names struct {
	mu sync.Mutex
	m  map[string]bool
}

// claim claims p exactly and reports whether it was free.
func (n *Names) claim(p string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m[p] {
		return false
	}
	if n.m == nil {
		n.m = map[string]bool{}
	}
	n.m[p] = true
	return true
}

// claimFree claims p, else the first free of p.1, p.2, ... (shortened
// to fit), and returns the one claimed.
func (n *Names) claimFree(p string) string {
	if n.claim(p) {
		return p
	}
	dir, base := filepath.Split(p)
	for i := 1; ; i++ {
		suffix := "." + strconv.Itoa(i)
		q := dir + truncateName(base, maxNameLen-len(suffix)) + suffix
		if n.claim(q) {
			return q
		}
	}
}

// release gives p up (a download that left nothing under that name).
func (n *Names) release(p string) {
	n.mu.Lock()
	delete(n.m, p)
	n.mu.Unlock()
}

// truncateName cuts name to at most n bytes without splitting a rune,
// keeping a short extension (two for .tar.gz and the like).
func truncateName(name string, n int) string {
	if len(name) <= n {
		return name
	}
	ext := path.Ext(name)
	if e2 := path.Ext(name[:len(name)-len(ext)]); len(e2) > 1 && len(e2) <= 5 {
		ext = e2 + ext
	}
	if len(ext) > 16 || len(ext) >= n || !utf8.ValidString(ext) {
		ext = ""
	}
	return truncateUTF8(name[:len(name)-len(ext)], n-len(ext)) + ext
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// partBase is the path the .part, the .part.meta and their temporaries
// are named after: final itself when every derived name fits, else a
// shortened name made unique by a hash of the final name (the .part.meta
// records the final name).
func partBase(final string) string {
	dir, base := filepath.Split(final)
	if len(base)+longestSuffix <= maxNameLen {
		return final
	}
	sum := sha256.Sum256([]byte(base))
	tag := "~" + hex.EncodeToString(sum[:4])
	return dir + truncateName(base, maxNameLen-longestSuffix-len(tag)) + tag
}

// responseName picks the file name for a response: Content-Disposition,
// else the URL's last path segment, else "index.html".
func responseName(resp *http.Response, u *url.URL) string {
	if name, ok := contentDispositionName(resp.Header.Get("Content-Disposition")); ok {
		return name
	}
	if name, ok := urlName(u); ok {
		return name
	}
	return "index.html"
}
