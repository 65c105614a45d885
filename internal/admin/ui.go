package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The dashboard: static files embedded in the binary (no CDN, no build step), served under
// /ui/ by the admin listener. The files hold no data, so they are served without the API
// key; the page asks for the key (when the admin JSON answers 401), keeps it in
// sessionStorage and sends it as X-API-Key on each poll, never in a URL. docs/dashboard.md.

//go:embed ui
var uiFiles embed.FS

const uiPrefix = "/ui/"

// isUI reports whether path is a dashboard file (answered without the key).
func isUI(path string) bool { return path == "/ui" || strings.HasPrefix(path, uiPrefix) }

// uiCSP keeps the page to its own files: no inline script, nothing from elsewhere, no
// framing (clickjacking), forms post only here.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func handleUI(mux *http.ServeMux) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(uiPrefix, http.FileServerFS(sub))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /ui", http.RedirectHandler(uiPrefix, http.StatusFound))
}
