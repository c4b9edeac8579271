//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package download

import (
	"errors"
	"os"
	"syscall"
)

// openLocked opens (creating if needed) the .part at path and takes an
// exclusive, non-blocking flock on it, so that two downloads never write
// the same file. The lock goes with the file descriptor and is released
// by Close, also when the process dies.
func openLocked(path string) (*os.File, error) {
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, &fileError{err}
		}
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return nil, &fileError{err}
		}
		var lerr error
		if err := rc.Control(func(fd uintptr) {
			lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
		}); err != nil {
			lerr = err
		}
		if errors.Is(lerr, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, &lockedError{path}
		}
		if lerr != nil {
			f.Close()
			return nil, &fileError{lerr}
		}
		// The holder of the lock may have renamed the file to its final
		// name between our open and our lock: then we hold a lock on a
		// file that is no longer the .part. Check, and open again.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		f.Close()
	}
	return nil, &lockedError{path}
}
