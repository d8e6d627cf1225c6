package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the dashboard: one page, one script, one style sheet, no
// external resources, so it works offline.
//
//go:embed web
var web embed.FS

func dashboard() http.Handler {
	sub, _ := fs.Sub(web, "web") // the directory is embedded: it exists
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/index.html", "/app.js", "/style.css":
		default:
			problem(w, http.StatusNotFound, "no such page %s: the dashboard is at /, the API under /v1/ (docs/operations.md)", r.URL.Path)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
