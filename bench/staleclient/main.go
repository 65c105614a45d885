// Command staleclient drives the stale-connection scenario: -clients sequential clients each
// send a GET/POST mix through a proxy, every request with a unique X-Request-Id, pausing
// between requests for a random interval drawn from [T-before, T+after], so that the proxy's
// pooled upstream connection is reused at idle ages straddling the backend's idle timeout T.
// Each request uses a new client connection (the client side is never stale). After
// -duration it reads the backend's /__stats and prints one tab-separated line:
//
//	requests  gets  posts  client_5xx  client_errors  backend_processed  backend_duplicates  backend_dropped  backend_idle_closes
//
// With -backend "" (another backend, whose stats the caller reads itself) it prints only the
// first five columns.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9200/", "proxy URL; a %d in it is replaced by the client's number (0..clients-1), e.g. to give each client a route and upstream of its own")
	backend := flag.String("backend", "127.0.0.1:9110", "stalebackend address (for /__stats); empty: print only the client's counts")
	clients := flag.Int("clients", 1, "sequential clients running side by side")
	dur := flag.Duration("duration", 30*time.Second, "how long to send")
	idle := flag.Duration("idle", time.Second, "the backend's idle timeout T")
	before := flag.Duration("before", 150*time.Millisecond, "pauses start at T minus this")
	after := flag.Duration("after", 50*time.Millisecond, "pauses end at T plus this")
	verbose := flag.Bool("v", false, "print each failed request")
	flag.Parse()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var reqs, gets, posts, fivexx, errs, other atomic.Int64
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, span := *idle-*before, *before+*after
			for n := 0; ; n++ {
				time.Sleep(lo + time.Duration(rand.Int64N(int64(span))))
				if time.Now().After(deadline) {
					return
				}
				id := fmt.Sprintf("c%d-%d-%d", i, n, time.Now().UnixNano())
				method := "GET"
				var body io.Reader
				if rand.IntN(2) == 0 {
					method, body = "POST", strings.NewReader(`{"order":"`+id+`"}`)
					posts.Add(1)
				} else {
					gets.Add(1)
				}
				reqs.Add(1)
				u := *url
				if strings.Contains(u, "%d") {
					u = fmt.Sprintf(u, i)
				}
				req, _ := http.NewRequest(method, u, body)
				req.Header.Set("X-Request-Id", id)
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					if *verbose {
						fmt.Fprintf(os.Stderr, "%s %s: %v\n", method, id, err)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 400 && resp.StatusCode < 500 {
					// The proxy refused the request itself (auth, a bad route): the
					// scenario is not measuring what it says.
					other.Add(1)
					if *verbose {
						fmt.Fprintf(os.Stderr, "%s %s: %d (not a stale-connection failure)\n", method, id, resp.StatusCode)
					}
				}
				if resp.StatusCode >= 500 {
					fivexx.Add(1)
					if *verbose {
						fmt.Fprintf(os.Stderr, "%s %s: %d %s\n", method, id, resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
					}
				}
			}
		}()
	}
	wg.Wait()
	if *backend == "" {
		fmt.Printf("%d\t%d\t%d\t%d\t%d\n", reqs.Load(), gets.Load(), posts.Load(), fivexx.Load(), errs.Load())
		refused(other.Load())
		return
	}
	var st map[string]int
	resp, err := client.Get("http://" + *backend + "/__stats")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "staleclient: backend stats:", err)
		os.Exit(1)
	}
	fmt.Printf("%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", reqs.Load(), gets.Load(), posts.Load(), fivexx.Load(), errs.Load(),
		st["processed"], st["duplicates"], st["dropped"], st["idle_closes"])
	refused(other.Load())
}

// refused fails the run when the proxy answered 4xx itself: such requests never met a stale
// connection, and a row of them would read as a proxy that fails nothing.
func refused(n int64) {
	if n > 0 {
		fmt.Fprintf(os.Stderr, "staleclient: %d requests were answered 4xx: the proxy refused them, the scenario measured nothing for them\n", n)
		os.Exit(1)
	}
}
