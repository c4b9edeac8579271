// Command fetch downloads files over HTTP so that a cancel is clean and a
// file is never corrupt: Ctrl-C keeps resumable .part files, running the
// same command again resumes them. See docs/fetch.md.
//
//	fetch [flags] URL...
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-cancellation/cancellation"
	"golang.org/x/term"
)

// errInterrupted is the cause of a cancellation by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func main() {
	root := cancellation.New()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		root.CancelCause(errInterrupted) // every download stops; .part files are kept
		<-sig
		fmt.Fprintln(os.Stderr, "\nfetch: interrupted again: exiting now (.part files are kept)")
		os.Exit(exitInterrupted)
	}()
	m := &Main{Name: os.Args[0], Stdout: os.Stdout, Stderr: os.Stderr, Terminal: term.IsTerminal(int(os.Stderr.Fd()))}
	os.Exit(m.Run(root.Token(), os.Args[1:]))
}
