package download

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how often written data is handed to the disk.
const writebackChunk = 8 << 20

// writeback starts the disk write of [from, to) of f without waiting for
// it (sync_file_range SYNC_FILE_RANGE_WRITE), and waits for the write
// of the chunk before it, which bounds the dirty pages one download leaves
// in the page cache. The final fsync then has little left to do, and disk
// writes overlap the download instead of following it. Errors are ignored:
// the fsync before the rename reports them.
func writeback(f *os.File, from, to int64) {
	fd := int(f.Fd())
	if from >= writebackChunk {
		unix.SyncFileRange(fd, from-writebackChunk, writebackChunk,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
	unix.SyncFileRange(fd, from, to-from, unix.SYNC_FILE_RANGE_WRITE)
}
