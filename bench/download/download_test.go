package download_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-cancellation/cancellation/download"
	"github.com/go-cancellation/cancellation/download/downloadtest"
)

// BenchmarkGet downloads a file of each size with download.Client (which
// also fsyncs and renames) and with http.Get + io.Copy into a file (no
// fsync), the floor any downloader sits on.
func BenchmarkGet(b *testing.B) {
	for _, size := range []int64{1 << 20, 16 << 20} {
		h := downloadtest.New(downloadtest.Pattern{Seed: 1}, size, `"v1"`)
		srv := httptest.NewServer(h)
		dir := b.TempDir()
		url := srv.URL + "/file.bin"
		b.Run(fmt.Sprintf("impl=download/size=%dMiB", size>>20), func(b *testing.B) {
			c := &download.Client{HTTPClient: srv.Client()}
			path := filepath.Join(dir, "a")
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(b.Context(), url, path); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("impl=httpget-copy/size=%dMiB", size>>20), func(b *testing.B) {
			client := srv.Client()
			path := filepath.Join(dir, "b")
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if err := naiveGet(client, url, path); err != nil {
					b.Fatal(err)
				}
			}
		})
		h.Close()
		srv.Close()
	}
}

func naiveGet(c *http.Client, url, path string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
