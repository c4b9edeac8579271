package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy allows nothing but the page's own origin: no inline
// script or style, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler returns the dashboard's handler: GET or HEAD / serves the page,
// /assets/NAME its script and style sheet, and any other path is 404 Not
// Found. Responses carry a strong ETag (so a reload revalidates with 304 Not
// Modified), Cache-Control: no-cache and a restrictive
// Content-Security-Policy. Other methods get 405 with an Allow header.
//
// Handler does not block; the returned handler is safe for concurrent use
// and serves from memory.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic("cancellation: dashboard: " + err.Error())
	}
	etags := make(map[string]string)
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags["/"+name] = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		return nil
	})
	if err != nil {
		panic("cancellation: dashboard: " + err.Error())
	}
	files := http.FileServerFS(root)
	assets := http.StripPrefix("/assets", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		name, serve := "/index.html", files
		if p := r.URL.Path; p != "/" {
			// Only the embedded files themselves: no directory listings,
			// and index.html only as /.
			name, serve = "/"+path.Base(p), assets
			if path.Dir(p) != "/assets" || path.Ext(p) == ".html" {
				name = ""
			}
		}
		etag, ok := etags[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Etag", etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		serve.ServeHTTP(w, r)
	})
}
