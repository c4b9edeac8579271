package main

// The terminal display end to end: the built binary in a pseudo-terminal
// (util-linux script), as a user sees it (defects 8 and 9 of issue 9).

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/download/downloadtest"
)

// startInTerminal runs the built fetch in a pseudo-terminal of cols×rows
// and returns its keyboard (what is written goes through the terminal's
// line discipline: "\x03" is Ctrl-C) and its screen output.
func startInTerminal(t *testing.T, dir string, cols, rows int, args ...string) (*exec.Cmd, io.WriteCloser, *syncBuffer) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run fetch in a terminal")
	}
	line := fmt.Sprintf("stty cols %d rows %d; exec %s", cols, rows, shellJoin(append([]string{buildFetch(t)}, args...)))
	cmd := exec.Command(script, "-q", "-e", "-c", line, "/dev/null")
	cmd.Dir = dir
	keys, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close(); cmd.Process.Kill() })
	return cmd, keys, out
}

var (
	cursorUp = regexp.MustCompile(`\x1b\[(\d+)A`)
	barLine  = regexp.MustCompile(`\[([=+> ]*)\]`)
	rateText = regexp.MustCompile(`([\d.]+) (B|KiB|MiB|GiB)/s`)
)

// frames splits the screen output into the frames fetch drew (each ends
// by clearing what is below it).
func screenFrames(out string) []string {
	return strings.Split(out, "\x1b[J")
}

// Defect 9: 30 downloads in an 80×20 terminal stay within its rows, the
// bars are 17 columns wide, and after Ctrl-C (echoed "^C") the next frame
// starts at the beginning of the line.
func TestTerminalCtrlC(t *testing.T) {
	t.Parallel()
	s := newServer(t, 512<<10)
	s.h.SetRate(128 << 10) // 4 s each: still running at the Ctrl-C
	dir := t.TempDir()
	args := []string{"-parallel", "30"}
	for i := range 30 {
		args = append(args, fmt.Sprintf("%s/file-%02d.bin", s.srv.URL, i))
	}
	cmd, keys, out := startInTerminal(t, dir, 80, 20, args...)
	out.waitFor(t, "… and 12 more")
	out.waitFor(t, " KiB/512 KiB") // bytes on disk: something to keep
	keys.Write([]byte("\x03"))
	if code := exitCode(t, cmd.Wait()); code != exitInterrupted {
		t.Fatalf("exit %d\n%q", code, out.String())
	}
	screen := out.String()
	i := strings.Index(screen, "^C")
	if i < 0 {
		t.Fatalf("no ^C echoed in %q", screen)
	}
	after := screen[i+2:]
	if !strings.HasPrefix(after, "\r") {
		// The echo came in the middle of a frame's write: the next
		// frame is the one to look at.
		if j := strings.Index(after, "\x1b[J"); j >= 0 {
			after = after[j+len("\x1b[J"):]
		}
	}
	if !strings.HasPrefix(after, "\r") {
		t.Errorf("after ^C: %q, want a frame starting with \\r", after[:min(len(after), 80)])
	}
	for _, m := range cursorUp.FindAllStringSubmatch(screen, -1) {
		if n, _ := strconv.Atoi(m[1]); n > 19 {
			t.Errorf("a frame moves up %d lines in a 20-row terminal", n)
		}
	}
	for _, fr := range screenFrames(screen) {
		bars := barLine.FindAllStringSubmatch(fr, -1)
		if len(bars) > 18 {
			t.Errorf("a frame with %d bars", len(bars))
		}
		for _, b := range bars {
			if len(b[1]) != 17 {
				t.Errorf("bar of %d columns at 80: %q", len(b[1]), b[0])
			}
		}
	}
	if !strings.Contains(screen, "partial files are kept; to resume") {
		t.Errorf("no resume hint in %q", screen)
	}
}

// Defect 8: a server that sends 256 KiB at once, then nothing for half a
// second (512 KiB/s on average) is shown at about its average, not at
// the speed of a burst.
func TestTerminalBurstyRate(t *testing.T) {
	t.Parallel()
	const size, burst = 3 << 20, 256 << 10
	data := downloadtest.Pattern{Seed: 4}.Bytes(size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Header().Set("Etag", `"b1"`)
		rc := http.NewResponseController(w)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for off := 0; off < size; off += burst {
			w.Write(data[off : off+burst])
			rc.Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cmd, _, out := startInTerminal(t, dir, 100, 10, srv.URL+"/bursty.bin")
	if code := exitCode(t, cmd.Wait()); code != exitOK {
		t.Fatalf("exit %d\n%q", code, out.String())
	}
	checkFile(t, dir+"/bursty.bin", data)
	// The second half of the screen output: the meter has a full window.
	screen := out.String()
	late := screen[len(screen)/2:]
	if i := strings.LastIndex(late, "saved "); i >= 0 {
		late = late[:i] // not the final line's average
	}
	rates := rateText.FindAllStringSubmatch(late, -1)
	if len(rates) < 5 {
		t.Fatalf("%d rates shown in the second half: %q", len(rates), late)
	}
	for _, m := range rates {
		v, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "MiB" && v >= 1 || m[2] == "GiB" {
			t.Errorf("shows %s %s/s for a 512 KiB/s download", m[1], m[2])
		}
	}
	for _, fr := range screenFrames(late) {
		// "0s" only once every byte is in (the rename may follow).
		if strings.Contains(fr, " 0s") && !strings.Contains(fr, "100%") {
			t.Errorf("an ETA of 0s with bytes to come: %q", fr)
		}
	}
}
