// Command h2up is the helper of bench/h2up.sh (HTTP/2 upstreams and gRPC, side by side):
//
//	h2up racy-backend -addr A [-goaway-every 10 -refuse 5 -idle 150ms]
//	    the racy HTTP/2 (h2c) backend of the tests (testutil.RacyH2); on SIGTERM it prints
//	    one JSON line: GOAWAYs, refused, streams above GOAWAYs, and how many request ids it
//	    processed more than once (duplicates)
//	h2up racy-client -url U -n 2000 -c 8 -ids FILE
//	    a GET/POST mix through a proxy (HTTP/1.1 client, x-test-id per request, POSTs carry
//	    "body-<id>"); prints failures and writes the ids it sent to FILE
//	h2up grpc-backend -addr A          a grpc-go TestService (UnaryCall)
//	h2up grpc-load -addr A -c 16 -d 5s  unary calls/s (h2c, one connection per worker)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"sluice/internal/testutil"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: h2up racy-backend|racy-client|grpc-backend|grpc-load [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen or dial address")
	url := fs.String("url", "", "proxy URL (racy-client)")
	n := fs.Int("n", 2000, "requests (racy-client)")
	c := fs.Int("c", 8, "concurrent workers")
	d := fs.Duration("d", 5*time.Second, "duration (grpc-load)")
	ids := fs.String("ids", "", "file the ids sent are written to (racy-client)")
	every := fs.Int("goaway-every", 10, "GOAWAY after 2..N streams per connection (racy-backend)")
	refuse := fs.Int("refuse", 5, "percent of streams refused (racy-backend)")
	idle := fs.Duration("idle", 150*time.Millisecond, "idle close (racy-backend)")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "racy-backend":
		err = racyBackend(*addr, *every, *refuse, *idle)
	case "racy-client":
		err = racyClient(*url, *n, *c, *ids)
	case "grpc-backend":
		err = grpcBackend(*addr)
	case "grpc-load":
		err = grpcLoad(*addr, *c, *d)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2up:", err)
		os.Exit(1)
	}
}

func racyBackend(addr string, every, refuse int, idle time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b := testutil.ServeRacyH2(ln, testutil.RacyH2Options{GoAwayEvery: every, RefusePercent: refuse,
		IdleClose: idle, Delay: 2 * time.Millisecond, HeaderTableSize: -1})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	b.Close()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"goaways": b.GoAways.Load(), "above_goaway": b.Unprocessed.Load(),
		"refused": b.Refused.Load(), "idle_closes": b.IdleCloses.Load(), "duplicates": b.Duplicates(), "bad_bodies": b.BadBodies.Load()})
}

func racyClient(url string, n, workers int, idsFile string) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	var next, failures atomic.Int64
	var mu sync.Mutex
	var sent []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				method, body := "GET", io.Reader(nil)
				if i%2 == 0 {
					method, body = "POST", strings.NewReader("body-"+id)
				}
				req, _ := http.NewRequest(method, url, body)
				req.Header.Set("X-Test-Id", id)
				resp, err := client.Do(req)
				ok := err == nil
				if ok {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == 200 && strings.HasPrefix(string(b), "ok "+id+" ")
				}
				if !ok {
					failures.Add(1)
				}
				mu.Lock()
				sent = append(sent, id)
				mu.Unlock()
				if i%50 == 0 {
					time.Sleep(200 * time.Millisecond) // past the backend's idle close
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("{\"requests\": %d, \"failures\": %d}\n", len(sent), failures.Load())
	if idsFile != "" {
		return os.WriteFile(idsFile, []byte(strings.Join(sent, "\n")), 0o644)
	}
	return nil
}

type unary struct {
	testgrpc.UnimplementedTestServiceServer
}

func (unary) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, req.ResponseSize)}}, nil
}

func grpcBackend(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, unary{})
	return s.Serve(ln)
}

func grpcLoad(addr string, workers int, d time.Duration) error {
	// The calls carry no deadline: with one, a call cut at the run's end by the backend's
	// grpc-timeout (which fires a little before the client's own timer) would count as an
	// error. The run ends by a flag; a call in flight then completes and is counted.
	var calls, errs atomic.Int64
	var stop atomic.Bool
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		c := testgrpc.NewTestServiceClient(cc)
		wg.Go(func() {
			req := &testgrpc.SimpleRequest{ResponseSize: 100, Payload: &testgrpc.Payload{Body: make([]byte, 100)}}
			for !stop.Load() {
				if _, err := c.UnaryCall(context.Background(), req); err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, &err)
					continue
				}
				calls.Add(1)
			}
		})
	}
	start := time.Now()
	time.AfterFunc(d, func() { stop.Store(true) })
	wg.Wait()
	el := time.Since(start)
	if e := first.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "grpc-load: first error: %v\n", *e)
	}
	fmt.Printf("{\"calls_per_second\": %.0f, \"calls\": %d, \"errors\": %d}\n", float64(calls.Load())/el.Seconds(), calls.Load(), errs.Load())
	return nil
}
