package download

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Segmented downloads (Client.Split): the missing byte ranges of the file
// are fetched over several connections at once, each writing at its own
// offset of the one .part, which has the file's full size from the start.
// A connection that finishes its range takes a free one, else half of the
// largest range another connection is still on, so all of them stay busy
// to the end. The .part.meta lists the ranges still missing, so a resume
// keeps every segment's progress.

// minSegment is the smallest range worth a connection of its own.
const minSegment = 256 << 10

// splittable reports whether the response just accepted may continue in
// segments: more than one connection allowed, a known size, a validator
// for If-Range, ranges supported, and enough left to share.
func (j *job) splittable(resp *http.Response) bool {
	return j.c.Split > 1 && j.f != nil && j.total > 0 && !j.noRange &&
		j.meta.ifRange() != "" && j.total-j.written >= 2*minSegment &&
		(resp.StatusCode == http.StatusPartialContent || resp.Header.Get("Accept-Ranges") == "bytes")
}

// seg is a missing range [pos, end); busy while a connection fills it.
type seg struct {
	pos, end int64
	writing  int64 // the bytes up to here are being written (>= pos)
	busy     bool
}

// segments is the shared state of the connections of one runSegments
// call; j.mu guards it.
type segments struct {
	j     *job
	spans []*seg // sorted by pos
	err   error  // the first failure
	stop  *cancellation.Source
}

// firstStream is a response already streaming from j.written to the end,
// handed over by attempt: the first connection continues with it.
type firstStream struct {
	cn   *conn
	resp *http.Response
}

// runSegments fills the missing ranges over up to Client.Split
// connections. It reports done when none is missing; otherwise it returns
// the first failure, with the ranges still missing stored in the .meta.
func (j *job) runSegments(first *firstStream) (bool, error) {
	if first == nil {
		j.attempts++
		j.resumed = j.written
	} else {
		// Switch the .part to segments: full size, one missing range.
		// The .meta first: a .part of full size under a .meta without
		// missing ranges would pass for a complete file after a crash.
		j.meta.Missing = []span{{j.written, j.total}}
		if err := j.saveMeta(); err != nil {
			return false, err
		}
		if err := j.f.Truncate(j.total); err != nil {
			return false, &fileError{err}
		}
	}
	// The digest is computed over the whole file at the end.
	if j.hasher != nil {
		j.hasher.Reset()
		j.hashed = 0
	}
	j.spliced = true
	s := &segments{j: j, stop: cancellation.New(j.tok)}
	defer s.stop.Cancel()
	for _, m := range j.meta.Missing {
		s.spans = append(s.spans, &seg{pos: m.Start, end: m.End})
	}
	n := max(j.c.Split, 1)
	j.mu.Lock()
	j.emitStarted(j.written, min(n, j.connsPossible(s)))
	j.mu.Unlock()

	var wg, workers sync.WaitGroup
	// Store the progress every second, so that a crash or a kill keeps
	// most of it (the .meta never claims bytes not yet written).
	wg.Go(func() { s.checkpoint(metaEvery) })
	for i := range n {
		var fs *firstStream
		var sp *seg
		if i == 0 && first != nil {
			fs, sp = first, s.spans[0]
			sp.busy = true
			// The first stream's request belongs to the attempt: end it
			// when the segments stop.
			unreg := context.AfterFunc(s.stop.Token(), fs.cn.stop)
			defer unreg()
		}
		workers.Go(func() { s.work(fs, sp) })
	}
	workers.Wait()
	s.stop.Cancel() // ends checkpoint
	wg.Wait()

	j.meta.Missing = s.missing()
	if len(j.meta.Missing) == 0 {
		j.meta.Missing = nil
		return true, nil
	}
	err := s.err
	if cerr := j.canceled(); cerr != nil {
		err = cerr
	}
	if errors.Is(err, errRangeIgnored) || errors.Is(err, errChanged) {
		// Fall back to one connection from zero (the server ignores
		// ranges), or start over (another version).
		j.noRange = j.noRange || errors.Is(err, errRangeIgnored)
		return false, j.restart(err)
	}
	if serr := j.saveMeta(); serr != nil && err == nil {
		err = serr
	}
	if err == nil {
		err = errors.New("segments stopped early")
	}
	return false, err
}

// metaEvery is how often the progress of segments is stored.
const metaEvery = time.Second

// missing returns the ranges not downloaded yet; j.mu must not be held.
func (s *segments) missing() []span {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	var m []span
	for _, sp := range s.spans {
		if sp.pos < sp.end {
			m = append(m, span{sp.pos, sp.end})
		}
	}
	return m
}

// checkpoint stores the missing ranges in the .meta every so often until
// the segments stop. Only bytes already written count as downloaded
// (seg.pos moves after the write), so the .meta is never ahead of the
// .part.
func (s *segments) checkpoint(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	stored := s.j.meta
	for {
		select {
		case <-s.stop.Token().Done():
			return
		case <-t.C:
		}
		stored.Missing = s.missing()
		if len(stored.Missing) > 0 {
			writeMeta(s.j.metaPath(), &stored) // best effort: the final save reports errors
		}
	}
}

// connsPossible is how many connections the missing ranges allow.
func (j *job) connsPossible(s *segments) int {
	n := 0
	for _, sp := range s.spans {
		n += int(max((sp.end-sp.pos)/minSegment, 1))
	}
	return n
}

// work is one connection: it fills ranges until none is left or one
// fails. fs, when not nil, is the stream it starts with, for sp.
func (s *segments) work(fs *firstStream, sp *seg) {
	j := s.j
	var buf []byte
	for {
		if sp == nil {
			if sp = s.take(); sp == nil {
				return
			}
		}
		if buf == nil {
			buf = j.c.newBuffer()
		}
		err := s.fill(sp, fs, buf)
		fs = nil
		final := err != nil && (!retryable(err) || errors.Is(err, errRangeIgnored) || errors.Is(err, errChanged))
		j.mu.Lock()
		sp.busy = false
		if err != nil && (s.err == nil || final) {
			s.err = err // a final error wins over a retryable one
		}
		j.mu.Unlock()
		if err != nil {
			if final {
				s.stop.Cancel()
			}
			return
		}
		sp = nil
	}
}

// take returns a free range, else splits off the second half of the
// largest busy one; nil when there is nothing left worth a connection.
func (s *segments) take() *seg {
	j := s.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if s.stop.Token().IsCanceled() {
		return nil
	}
	var big *seg
	bigIdx := -1
	for i, sp := range s.spans {
		if sp.pos >= sp.end {
			continue
		}
		if !sp.busy {
			sp.busy = true
			return sp
		}
		if big == nil || sp.end-max(sp.pos, sp.writing) > big.end-max(big.pos, big.writing) {
			big, bigIdx = sp, i
		}
	}
	if big == nil {
		return nil
	}
	from := max(big.pos, big.writing)
	if big.end-from < 2*minSegment {
		return nil
	}
	mid := from + (big.end-from)/2
	mid -= mid % (64 << 10) // keep writes aligned
	ns := &seg{pos: mid, end: big.end, busy: true}
	big.end = mid
	s.spans = append(s.spans, nil)
	copy(s.spans[bigIdx+2:], s.spans[bigIdx+1:])
	s.spans[bigIdx+1] = ns
	return ns
}

// fill fetches sp with a ranged request (or the first stream) and writes
// it at its offset, until sp is full: its end may move down meanwhile,
// when another connection takes its second half.
func (s *segments) fill(sp *seg, fs *firstStream, buf []byte) error {
	j := s.j
	var cn *conn
	var resp *http.Response
	last := int64(-1) // the last byte the response announced
	if fs != nil {
		cn, resp = fs.cn, fs.resp
	} else {
		j.mu.Lock()
		from, to := sp.pos, sp.end-1
		j.attempts++
		j.mu.Unlock()
		cn = j.newConn(s.stop.Token())
		defer cn.stop()
		var err error
		resp, err = cn.send(from, to, j.meta.ifRange())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if last, err = j.checkSegment(resp, from); err != nil {
			return err
		}
	}
	wb := sp.pos // start of the range not yet handed to the disk
	err := cn.pump(resp.Body, buf, func(b []byte) (bool, error) {
		// Reserve the bytes under the lock (take never splits below
		// sp.writing), write them without it, then count them.
		j.mu.Lock()
		at := sp.pos
		n := int(min(int64(len(b)), sp.end-at))
		sp.writing = at + int64(n)
		j.mu.Unlock()
		if n > 0 {
			if _, err := j.f.WriteAt(b[:n], at); err != nil {
				return false, &fileError{err}
			}
		}
		j.mu.Lock()
		sp.pos += int64(n)
		j.written += int64(n)
		if n > 0 {
			j.emit(Event{Kind: Received})
		}
		more, from, to := sp.pos < sp.end, wb, sp.pos
		j.mu.Unlock()
		if to-from >= writebackChunk {
			writeback(j.f, from, to)
			wb = to
		}
		return more, nil
	})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if sp.pos < sp.end && sp.pos != last+1 {
		return fmt.Errorf("connection closed %d bytes before the end of its range", sp.end-sp.pos)
	}
	return nil // done, or a shorter range than asked: the rest is taken again
}

// checkSegment checks the answer to a ranged request from byte from and
// returns the last byte it announces.
func (j *job) checkSegment(resp *http.Response, from int64) (int64, error) {
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if j.meta.sameVersion(resp.Header, resp.ContentLength) {
			return 0, errRangeIgnored
		}
		return 0, errChanged
	default:
		return 0, httpError(resp)
	}
	cr, err := parseContentRange(resp.Header.Get("Content-Range"))
	switch {
	case err != nil:
		return 0, &protocolError{"206 with " + quote(resp.Header.Get("Content-Range"))}
	case cr.Start != from:
		return 0, &protocolError{fmt.Sprintf("asked for bytes from %d, got %d-%d", from, cr.Start, cr.End)}
	case !j.meta.sameVersion(resp.Header, cr.Total) || cr.Total != j.total:
		return 0, errChanged
	}
	return cr.End, nil
}
