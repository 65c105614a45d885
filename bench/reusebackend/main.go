// Command reusebackend is the Go net/http backend of the connection-reuse scenario
// (bench/reuse.sh, docs/benchmarks.md): a plain http.Server whose IdleTimeout closes keep-alive
// connections idle for -idle, as a real Go service does. It counts the connections it accepted
// and the X-Request-Id of every request it processed; GET /__stats answers
// {"accepts":A,"processed":N,"duplicates":D} (duplicates: requests processed more than once, an
// unsafe retry by the proxy). bench/reusebackend/node.js is the same backend in Node.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

type stats struct {
	mu         sync.Mutex
	seen       map[string]int
	accepts    int
	processed  int
	duplicates int
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9120", "listen address")
	idle := flag.Duration("idle", time.Second, "http.Server IdleTimeout")
	size := flag.Int("size", 300, "response body bytes")
	flag.Parse()
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'x'
	}
	st := &stats{seen: map[string]int{}}
	srv := &http.Server{
		Addr:        *addr,
		IdleTimeout: *idle,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				st.mu.Lock()
				st.accepts++
				st.mu.Unlock()
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if r.URL.Path == "/__stats" {
				st.mu.Lock()
				b, _ := json.Marshal(map[string]int{"accepts": st.accepts, "processed": st.processed, "duplicates": st.duplicates})
				st.mu.Unlock()
				_, _ = w.Write(b)
				return
			}
			st.mu.Lock()
			st.processed++
			if id := r.Header.Get("X-Request-Id"); id != "" {
				st.seen[id]++
				if st.seen[id] > 1 {
					st.duplicates++
				}
			}
			st.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
