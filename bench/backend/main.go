// Command backend is the plain Go HTTP backend of the benchmark suite: it answers every
// request with a fixed small body, keep-alive on.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	size := flag.Int("size", 300, "response body bytes")
	flag.Parse()
	body := []byte(strings.Repeat("x", *size))
	clen := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", clen)
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
