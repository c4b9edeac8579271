package download

import "os"

// syncDir fsyncs a directory so that a rename in it is durable. Errors are
// ignored: some platforms and file systems cannot sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
