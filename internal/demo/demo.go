// Package demo is the built-in echo backend that `sluice run` starts next to the embedded
// default config, so that a fresh machine has something to proxy to.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Handler answers every request with a JSON description of what it received. Two paths do
// more: /sse?n=3 streams n server-sent events a few hundred ms apart, and /slow?ms=500 waits.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", sse)
	mux.HandleFunc("/", echo)
	return mux
}

func echo(w http.ResponseWriter, r *http.Request) {
	if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 && ms <= 60000 {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	n, _ := io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{
		"backend":    "sluice demo echo",
		"method":     r.Method,
		"path":       r.URL.Path,
		"query":      r.URL.RawQuery,
		"host":       r.Host,
		"headers":    r.Header,
		"body_bytes": n,
	})
}

func sse(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 || n > 100 {
		n = 3
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f, _ := w.(http.Flusher)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "id: %d\ndata: event %d of %d at %s\n\n", i, i, n, time.Now().Format(time.RFC3339Nano))
		if f != nil {
			f.Flush()
		}
		if i < n {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// Serve starts the echo backend on addr and returns the server (Close stops it).
func Serve(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start demo backend on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
