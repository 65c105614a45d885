// Command wsload is the WebSocket side of the benchmark suite (bench/ws.sh). With -serve it
// is a WebSocket echo backend; otherwise it keeps -c connections to -url busy sending a
// -size byte message and waiting for its echo, for -d, and prints one tab-separated line:
//
//	messages  messages_per_second  p50_ms  p99_ms  errors
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	serve := flag.String("serve", "", "listen address: run the echo backend")
	url := flag.String("url", "ws://127.0.0.1:9100/ws", "the WebSocket URL to load")
	conns := flag.Int("c", 32, "connections")
	dur := flag.Duration("d", 5*time.Second, "duration")
	size := flag.Int("size", 128, "message size in bytes")
	flag.Parse()
	if *serve != "" {
		fmt.Fprintln(os.Stderr, http.ListenAndServe(*serve, http.HandlerFunc(echo)))
		os.Exit(1)
	}
	load(*url, *conns, *dur, *size)
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1) // -size may exceed the library's 32 KiB default
	for {
		typ, msg, err := c.Read(context.Background())
		if err != nil {
			return
		}
		if c.Write(context.Background(), typ, msg) != nil {
			return
		}
	}
}

func load(url string, conns int, dur time.Duration, size int) {
	msg := make([]byte, size)
	var total, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
			defer cancel()
			c, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				errs.Add(1)
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(-1)
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if c.Write(ctx, websocket.MessageBinary, msg) != nil {
					errs.Add(1)
					break
				}
				if _, _, err := c.Read(ctx); err != nil {
					errs.Add(1)
					break
				}
				mine = append(mine, time.Since(t0))
			}
			c.Close(websocket.StatusNormalClosure, "")
			total.Add(int64(len(mine)))
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))]) / 1e6
	}
	fmt.Printf("%d\t%.0f\t%.3f\t%.3f\t%d\n", total.Load(), float64(total.Load())/elapsed.Seconds(), q(0.5), q(0.99), errs.Load())
}
