package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/go-cancellation/cancellation/internal/browsertest"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDocumented(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
}

// The browser runs a page's script: the text the test reads was written by
// JavaScript.
func TestNewRunsScripts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>t</title><p id="out"></p>` +
			`<script>document.getElementById('out').textContent = 'from ' + 'script';</script>`))
	}))
	defer srv.Close()
	ctx := browsertest.New(t, 800, 600)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out")))
	if err != nil || got != "from script" {
		t.Fatalf("text %q, %v; want %q", got, err, "from script")
	}
}
