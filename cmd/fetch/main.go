// Command fetch downloads files over HTTP so that a cancel is clean and a
// file is never corrupt: Ctrl-C keeps resumable .part files, running the
// same command again resumes them. See docs/fetch.md.
//
//	fetch [flags] URL...
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
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
	go watchSignals(sig, root, os.Stderr, os.Exit)
	fd := int(os.Stderr.Fd())
	m := &Main{
		Name: commandName(os.Args[0], mainPackage()), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Terminal: term.IsTerminal(fd),
		TermSize: func() (int, int) {
			w, h, _ := term.GetSize(fd)
			return w, h
		},
	}
	os.Exit(m.Run(root.Token(), os.Args[1:]))
}

// mainPackage is the import path of this command, from the build info.
func mainPackage() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" {
		return bi.Path
	}
	return ""
}

// commandName is how to run the command again: arg0, unless it is a
// binary that "go run" built in a temporary directory and deletes on
// exit; then "go run PACKAGE".
func commandName(arg0, pkg string) string {
	sep := string(filepath.Separator)
	if strings.Contains(arg0, sep+"go-build") && strings.Contains(arg0, sep+"exe"+sep) {
		if pkg == "" || pkg == "command-line-arguments" {
			return "fetch"
		}
		return "go run " + pkg
	}
	return arg0
}

// watchSignals cancels src with errInterrupted at the first signal (every
// download stops and keeps its .part; Run then prints how to resume) and
// calls exit(130) at the second, for when the first is not quick enough
// (say, an fsync of a large file on a slow disk).
func watchSignals(sig <-chan os.Signal, src *cancellation.Source, stderr io.Writer, exit func(int)) {
	<-sig
	src.CancelCause(errInterrupted)
	<-sig
	fmt.Fprintln(stderr, "\nfetch: interrupted again: exiting now (.part files are kept)")
	exit(exitInterrupted)
}
