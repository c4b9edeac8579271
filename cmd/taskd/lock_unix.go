//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockData takes an exclusive lock on dir (a file LOCK in it), so that two
// taskd processes never run embedded NATS servers on the same files — for
// instance a restarted taskd while the old one still drains. The lock is
// held until the returned func is called or the process exits.
func lockData(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("-data %s is in use by another taskd (wait for it to exit, or give another -data): %w", dir, err)
	}
	return func() { f.Close() }, nil
}
