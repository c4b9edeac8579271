package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-cancellation/cancellation/dashboard"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDocumented(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
}

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesPageAndAssets(t *testing.T) {
	t.Parallel()
	h := dashboard.Handler()
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<form id="start-task"`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "new EventSource('/events')"},
		{"/assets/style.css", "text/css; charset=utf-8", "progress"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			res := get(t, h, http.MethodGet, tt.path, nil)
			b := body(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %s", res.Status)
			}
			if got := res.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if !strings.Contains(b, tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			for _, k := range []string{"Etag", "Content-Security-Policy", "X-Content-Type-Options"} {
				if res.Header.Get(k) == "" {
					t.Errorf("no %s header", k)
				}
			}
			if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}

			// A reload revalidates: 304 for the same ETag.
			res = get(t, h, http.MethodGet, tt.path, http.Header{"If-None-Match": {res.Header.Get("Etag")}})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: %s, want 304", res.Status)
			}
			res = get(t, h, http.MethodHead, tt.path, nil)
			if res.StatusCode != http.StatusOK || body(t, res) != "" {
				t.Errorf("HEAD: %s", res.Status)
			}
		})
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	t.Parallel()
	h := dashboard.Handler()
	for _, path := range []string{"/index.html", "/app.js", "/assets/", "/assets", "/assets/index.html", "/assets/nope.js", "/static/app.js", "/nope"} {
		if res := get(t, h, http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, res.Status)
		}
	}
	res := get(t, h, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s, Allow %q", res.Status, res.Header.Get("Allow"))
	}
}

// The page's stable hooks, and the defaults of the start form: the seed's
// task (kind longrunning, 20 iterations of 1s).
func TestPageHooks(t *testing.T) {
	t.Parallel()
	page := body(t, get(t, dashboard.Handler(), http.MethodGet, "/", nil))
	for _, want := range []string{
		`<form id="start-task">`,
		`<option value="longrunning" selected>`,
		`name="iterations" type="number"`, `value="20"`,
		`name="interval" type="text" value="1s"`,
		`data-field="state"`, `<progress`,
		`<input name="reason"`, `data-action="cancel"`,
		`<script src="/assets/app.js" defer></script>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " style=") || strings.Contains(page, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Error("inline script, style or event handler: the content security policy blocks them")
	}
}

// Task data reaches the page as text only: the script never parses markup.
func TestScriptBuildsNoMarkup(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "DOMParser", "prompt("} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
