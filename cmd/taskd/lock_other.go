//go:build !unix

package main

// lockData does nothing where flock(2) is missing.
func lockData(dir string) (unlock func(), err error) { return func() {}, nil }
