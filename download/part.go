package download

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The files on disk: NAME.part holds the bytes, NAME.part.meta what they
// are a prefix of (see meta.go). Both are named after partBase(NAME),
// which is NAME unless that is too long.

func (j *job) partPath() string { return partBase(j.path) + ".part" }
func (j *job) metaPath() string { return partBase(j.path) + ".part.meta" }

// open opens and locks the .part of j.path and decides whether its bytes
// can be trusted: only with a stored validator for the same URL and the
// same final name.
func (j *job) open() error {
	f, err := openLocked(j.partPath())
	if err != nil {
		return err
	}
	j.f = f
	fi, err := f.Stat()
	if err != nil {
		return &fileError{err}
	}
	m, err := readMeta(j.metaPath())
	size := fi.Size()
	if m.Name == "" && partBase(j.path) == j.path {
		m.Name = filepath.Base(j.path) // stored before names were
	}
	if err != nil || m.URL != j.shown || m.ifRange() == "" || m.Name != filepath.Base(j.path) {
		return j.reset()
	}
	switch {
	case len(m.Missing) > 0 && size == m.Size:
		// A segmented download: the .part has the full size, with holes.
		missing := int64(0)
		for _, s := range m.Missing {
			missing += s.End - s.Start
		}
		j.meta, j.total, j.written, j.flushed = m, m.Size, m.Size-missing, m.Size
		j.spliced = true
		return nil
	case len(m.Missing) == 0 && size > 0 && (m.Size < 0 || size <= m.Size):
		j.meta, j.total, j.written, j.flushed = m, m.Size, size, size
		j.spliced = true
		if _, err := f.Seek(size, io.SeekStart); err != nil {
			return &fileError{err}
		}
		return nil
	}
	return j.reset()
}

// newMeta is the .part.meta for a response with these validators.
func (j *job) newMeta(etag, lastModified string, total int64) partMeta {
	return partMeta{
		Version: 1, URL: j.shown, ETag: etag, LastModified: lastModified, Size: total,
		Name: filepath.Base(j.path), FromResponse: j.r.Path == "",
	}
}

// saveMeta stores j.meta beside the .part.
func (j *job) saveMeta() error {
	if j.f == nil || j.meta.ifRange() == "" {
		return nil
	}
	if err := writeMeta(j.metaPath(), &j.meta); err != nil {
		return &fileError{err}
	}
	return nil
}

// restart forgets the .part so that the next attempt starts from zero,
// and returns err (a retryable *protocolError), which also becomes the
// reason shown when it starts again.
func (j *job) restart(err error) error {
	if rerr := j.reset(); rerr != nil {
		return rerr
	}
	j.why = err
	return err
}

// errNoRestart: bytes already went to Request.Output, which cannot be
// taken back.
var errNoRestart = errors.New("cannot start again from zero: bytes were already written to the output")

// reset empties the .part and forgets its validator.
func (j *job) reset() error {
	if j.out != nil && j.written > 0 {
		return &fileError{errNoRestart}
	}
	j.written, j.flushed, j.hashed, j.total, j.spliced = 0, 0, 0, -1, false
	j.meta = partMeta{}
	if j.hasher != nil {
		j.hasher.Reset()
	}
	if j.f == nil {
		return nil
	}
	os.Remove(j.metaPath())
	if err := j.f.Truncate(0); err != nil {
		return &fileError{err}
	}
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return &fileError{err}
	}
	return nil
}

// hashPrefix feeds f[hashed:written] to the hasher, checking for
// cancellation between chunks.
func (j *job) hashPrefix() error {
	buf := make([]byte, 1<<20)
	for j.hashed < j.written {
		if j.tok.IsCanceled() {
			return j.canceled()
		}
		n := int(min(int64(len(buf)), j.written-j.hashed))
		if _, err := j.f.ReadAt(buf[:n], j.hashed); err != nil {
			return &fileError{err}
		}
		j.hasher.Write(buf[:n])
		j.hashed += int64(n)
	}
	return nil
}

// verify checks the size and, if asked, the digest of the complete .part.
func (j *job) verify() error {
	if j.total >= 0 && j.written != j.total {
		return fmt.Errorf("size mismatch: have %d bytes, want %d", j.written, j.total)
	}
	if j.hasher == nil {
		return nil
	}
	if j.f != nil {
		if err := j.hashPrefix(); err != nil {
			return err
		}
	}
	if got := j.hasher.Sum(nil); string(got) != string(j.r.SHA256) {
		return &ChecksumError{Want: j.r.SHA256, Got: got}
	}
	return nil
}

// commit makes the complete .part the final file, durably. With
// NoClobber the final name is linked, which fails if it exists.
func (j *job) commit() (*Result, error) {
	res := &Result{URL: j.shown, Path: j.path, Size: j.written, Resumed: j.resumed, Attempts: j.attempts, Renamed: j.renamed}
	if j.hasher != nil {
		res.SHA256 = j.hasher.Sum(nil)
	}
	if j.out != nil {
		return res, nil
	}
	if err := j.f.Sync(); err != nil {
		return nil, &fileError{err}
	}
	if j.r.NoClobber {
		if err := os.Link(j.partPath(), j.path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("%s: %w", j.path, ErrExists)
			}
			return nil, &fileError{err}
		}
		os.Remove(j.partPath())
	} else if err := os.Rename(j.partPath(), j.path); err != nil {
		return nil, &fileError{err}
	}
	syncDir(filepath.Dir(j.path))
	os.Remove(j.metaPath())
	j.committed = true
	return res, nil
}

// discard removes the .part and its validator (after a checksum mismatch).
func (j *job) discard() {
	if j.f != nil {
		os.Remove(j.partPath())
		os.Remove(j.metaPath())
		j.written = 0
		j.meta = partMeta{}
	}
}

// resumable reports whether what is on disk can be resumed later.
func (j *job) resumable() bool {
	return j.f != nil && j.written > 0 && j.meta.ifRange() != "" && !j.noRange
}

// close releases the .part; one that cannot be resumed is removed, and
// so is the claim on a name under which nothing was left.
func (j *job) close() {
	if j.f == nil {
		if j.claimed {
			j.r.Names.release(j.path)
		}
		return
	}
	if !j.committed && !j.resumable() {
		// Bytes without a validator would not be trusted next time.
		os.Remove(j.partPath())
		os.Remove(j.metaPath())
		if j.claimed {
			j.r.Names.release(j.path)
		}
	}
	j.f.Close() // unlocks
	j.f = nil
}
