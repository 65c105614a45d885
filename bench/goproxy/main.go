// Command goproxy is the Go baseline of the benchmark suite: net/http's server with
// httputil.ReverseProxy and an idle pool as large as the benchmark's connection count.
// -idle-timeout sets the pool's idle timeout (0, the default, keeps idle connections forever,
// the misconfiguration of the stale-connection scenario).
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9203", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:9100", "backend URL")
	idle := flag.Int("idle", 128, "idle connections kept to the backend")
	idleTimeout := flag.Duration("idle-timeout", 0, "idle timeout of pooled backend connections (0: none)")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConns: *idle, MaxIdleConnsPerHost: *idle, IdleConnTimeout: *idleTimeout}
	log.Fatal(http.ListenAndServe(*addr, rp))
}
