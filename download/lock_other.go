//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package download

import "os"

// openLocked opens (creating if needed) the .part at path. This platform
// has no flock: two downloads of the same file at once are not detected.
func openLocked(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, &fileError{err}
	}
	return f, nil
}
