package download

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how often written data is handed to the disk.
const writebackChunk = 8 << 20

// writeback starts the disk write of [from, to) of f without waiting for
// it (sync_file_range with SYNC_FILE_RANGE_WRITE only), so that disk
// writes overlap the download instead of all following it in the final
// fsync. It never waits for the disk: a cancellation is not delayed by a
// slow one. Errors are ignored: the fsync before the rename reports them.
func writeback(f *os.File, from, to int64) {
	unix.SyncFileRange(int(f.Fd()), from, to-from, unix.SYNC_FILE_RANGE_WRITE)
}
