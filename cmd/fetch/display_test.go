package main

// Tests of the progress display (defects 8 and 9 of issue 9).

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-cancellation/cancellation/download/downloadtest"
)

// Defect 8: a server that sends bursts (2 MiB at once, then nothing for a
// second) is shown at its average rate, not the burst's.
func TestMeterBursty(t *testing.T) {
	t.Parallel()
	m := newMeter(5 * time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var n int64
	for tick := range 100 { // 10 s of 100 ms ticks
		if tick%10 == 0 {
			n += 2 << 20
		}
		m.add(t0.Add(time.Duration(tick)*100*time.Millisecond), n)
	}
	if r := m.rate(); r < 1.6*(1<<20) || r > 2.4*(1<<20) {
		t.Errorf("rate %s/s, want about 2 MiB/s", formatBytes(int64(r)))
	}
	end := t0.Add(99 * 100 * time.Millisecond)
	if eta := m.eta(end, 10<<20, 30<<20); eta != "10s" && eta != "9s" && eta != "11s" {
		t.Errorf("ETA %q for 20 MiB at 2 MiB/s", eta)
	}
}

// Defect 8: a stall shows "stalled", not an ETA of 0s.
func TestMeterStalled(t *testing.T) {
	t.Parallel()
	m := newMeter(5 * time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.add(t0, 0)
	m.add(t0.Add(time.Second), 5<<20)
	for i := 2; i <= 8; i++ {
		m.add(t0.Add(time.Duration(i)*time.Second), 5<<20)
	}
	if eta := m.eta(t0.Add(8*time.Second), 5<<20, 10<<20); eta != "stalled" {
		t.Errorf("ETA %q, want stalled", eta)
	}
}

// Defect 8: in plain lines, bytes kept from before are not speed: the
// lines after a resume of 31 MiB show the transfer's rate (512 KiB/s),
// never the offset's (31 MiB in a second). The bound leaves room for a
// loaded machine that reads a socket's buffered bytes late.
func TestLinesRateAfterResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, 32<<20)
	s.h.Plan(downloadtest.Step{Cut: true, After: 31 << 20})
	dir := t.TempDir()
	if code, _, stderr := run(t, t.Context(), s, "-dir", dir, "-retries", "0", s.srv.URL+"/f.bin"); code != exitFailed {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	s.h.SetRate(512 << 10) // 2 s for the last MiB
	var stderr syncBuffer
	m := &Main{Stderr: &stderr, Transport: s.srv.Client().Transport, Progress: time.Second}
	if code := m.Run(t.Context(), []string{"-dir", dir, s.srv.URL + "/f.bin"}); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resuming at 31.0 MiB") {
		t.Fatalf("no resume in\n%s", stderr.String())
	}
	rates := regexp.MustCompile(`\(\d+%\), ([\d.]+) (B|KiB|MiB|GiB)/s`).FindAllStringSubmatch(stderr.String(), -1)
	if len(rates) == 0 {
		t.Fatalf("no progress line in\n%s", stderr.String())
	}
	for _, r := range rates {
		v, _ := strconv.ParseFloat(r[1], 64)
		if r[2] == "MiB" && v >= 16 || r[2] == "GiB" {
			t.Errorf("line shows %s %s/s: the resumed 31 MiB counted as speed\n%s", r[1], r[2], stderr.String())
		}
	}
	if strings.Contains(stderr.String(), " -") {
		t.Errorf("a negative number:\n%s", stderr.String())
	}
}

// Defect 8: an unknown size shows no total, no percentage.
func TestBarUnknownSize(t *testing.T) {
	t.Parallel()
	f := &file{url: "http://x/f", shown: "http://x/f"}
	f.setName("f")
	f.total.Store(-1)
	f.written.Store(3 << 20)
	f.started.Store(true)
	line := newLayout(100).render(&bar{f: f, mt: newMeter(time.Second)}, time.Now())
	if strings.Contains(line, "/ 0") || strings.Contains(line, "%") || strings.Contains(line, "/0") {
		t.Errorf("line %q", line)
	}
}

// Defect 9: units are B, KiB, MiB; never a fractional or lowercase byte.
func TestUnits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n           int64
		short, long string
	}{
		{0, "0 B", "0 B"},
		{1000, "1000 B", "1000 B"},
		{1536, "1.5 KiB", "1.5 KiB"},
		{1023 << 10, "1023 KiB", "1023.0 KiB"},
		{20 << 20, "20.0 MiB", "20.0 MiB"},
		{5 << 30, "5.0 GiB", "5.0 GiB"},
	} {
		if got := shortBytes(tc.n); got != tc.short || len(got) > sizeW {
			t.Errorf("shortBytes(%d) = %q, want %q", tc.n, got, tc.short)
		}
		if got := formatBytes(tc.n); got != tc.long {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.long)
		}
	}
}

func testBar(name string, written, total, offset int64) *bar {
	f := &file{url: "http://x/" + name, shown: "http://x/" + name}
	f.setName(name)
	f.total.Store(total)
	f.written.Store(written)
	f.offset.Store(offset)
	f.started.Store(true)
	return &bar{f: f, mt: newMeter(time.Second)}
}

// Defect 9: bars are wide enough at 80 and 60 columns, lines never wrap,
// columns stay aligned whatever the names and sizes, and a resumed file
// shows its kept part ('+').
func TestBarLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ width, minBar int }{{120, 40}, {80, 15}, {60, 10}, {40, 4}} {
		lay := newLayout(tc.width)
		if lay.bar < tc.minBar {
			t.Errorf("width %d: bar of %d, want at least %d", tc.width, lay.bar, tc.minBar)
		}
		var cols []int
		for _, br := range []*bar{
			testBar("a", 5, 10, 0),
			testBar("a-much-longer-name-than-fits-in-the-column.iso", 999<<20, 1023<<20, 0),
			testBar("kb", 1536, 2048, 0),
		} {
			br.mt.add(time.Now().Add(-time.Second), 0)
			br.mt.add(time.Now(), 1<<20) // a rate and an ETA to show
			line := lay.render(br, time.Now())
			if n := utf8.RuneCountInString(line); n != tc.width-1 || strings.HasSuffix(line, "…") {
				t.Errorf("width %d: line of %d, want %d, not cut: %q", tc.width, n, tc.width-1, line)
			}
			cols = append(cols, utf8.RuneCountInString(line[:strings.Index(line, "[")]))
		}
		if cols[0] != cols[1] || cols[1] != cols[2] {
			t.Errorf("width %d: bars start at columns %v", tc.width, cols)
		}
	}
	line := newLayout(80).render(testBar("r", 6<<20, 8<<20, 4<<20), time.Now())
	if !strings.Contains(line, "++++") || !strings.Contains(line, "+===") {
		t.Errorf("resumed file not marked: %q", line)
	}
}

// frames records each Write (the bars write one frame per Write).
type frames struct {
	mu sync.Mutex
	w  [][]byte
}

func (f *frames) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w = append(f.w, bytes.Clone(p))
	return len(p), nil
}

// Defect 9: 30 downloads in a 20-row terminal: every frame starts with a
// carriage return (after an echoed ^C) and draws at most 19 lines of
// bars, the last summing up the files that do not fit.
func TestBarsFitTerminal(t *testing.T) {
	t.Parallel()
	s := newServer(t, 256<<10)
	s.h.SetRate(512 << 10) // 0.5 s each, all at once
	var out frames
	m := &Main{Stderr: &out, Terminal: true, Transport: s.srv.Client().Transport, TermSize: func() (int, int) { return 80, 20 }}
	args := []string{"-dir", t.TempDir(), "-parallel", "30"}
	for i := range 30 {
		args = append(args, fmt.Sprintf("%s/%d.bin", s.srv.URL, i))
	}
	if code := m.Run(t.Context(), args); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	up := regexp.MustCompile(`^\r(\x1b\[(\d+)A)?`)
	sawMore := false
	for i, fr := range out.w {
		if bytes.HasPrefix(fr, []byte("fetch: 30 saved")) {
			continue // the summary, after the display
		}
		mm := up.FindSubmatch(fr)
		if mm == nil {
			t.Fatalf("frame %d does not start with \\r: %q", i, fr)
		}
		if n, _ := strconv.Atoi(string(mm[2])); n > 19 {
			t.Errorf("frame %d moves up %d lines: more than the terminal's 20 rows", i, n)
		}
		bars := bytes.Count(fr, []byte("] "))
		if bars > 19 { // 19 rows hold 19 bars, or 18 and the summary line
			t.Errorf("frame %d draws %d bars", i, bars)
		}
		sawMore = sawMore || bytes.Contains(fr, []byte("… and 12 more"))
	}
	if !sawMore {
		t.Errorf("no summary line for the bars that do not fit")
	}
	last := out.w[len(out.w)-2]
	if bytes.Contains(last, []byte("] ")) {
		t.Errorf("the last frame still has bars: %q", last)
	}
}

// TestBarsInterrupted: the bars' last frame after a cancel, and the
// files' final lines above it.
func TestBarsResumeShown(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Cut: true, After: 200_000})
	var out frames
	dir := t.TempDir()
	m := &Main{Stderr: &out, Terminal: true, Transport: s.srv.Client().Transport}
	if code := m.Run(t.Context(), []string{"-dir", dir, s.srv.URL + "/a.bin"}); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var all bytes.Buffer
	for _, fr := range out.w {
		all.Write(fr)
	}
	for _, want := range []string{"a.bin: resuming at 195.3 KiB of 1.0 MiB (19%)", "saved " + filepath.Join(dir, "a.bin")} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no %q in %q", want, all.String())
		}
	}
}
