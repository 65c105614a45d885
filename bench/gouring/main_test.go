//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// variants are the ring features gouring can run with; every test runs on each.
var variants = []struct {
	name string
	opt  options
}{
	{"plain", options{}},
	{"multishot-accept", options{multiAccept: true}},
	{"recv-ring", options{recvRing: true}},
	{"fixed-files", options{fixedFiles: true}},
	{"coop", options{setup: setupCoopTaskrun}},
	{"single-defer", options{setup: setupSingleIssuer | setupDeferTaskrun}},
	{"ring-peek", options{ringPeek: true}},
	{"raw-enter", options{rawEnter: true}},
	{"all", options{ringPeek: true, multiAccept: true, recvRing: true, fixedFiles: true, setup: setupSingleIssuer | setupDeferTaskrun}},
}

// proxy starts gouring (2 rings) in front of backend and returns its address. The loops
// run until the test binary exits.
func proxy(t *testing.T, backend string, o options) string {
	t.Helper()
	if o.entries == 0 {
		o.entries = 64 // small, so that a full submission queue is exercised too
	}
	if r, err := newRing(8, 0); err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	} else {
		syscall.Close(r.fd)
	}
	up, err := sockaddr(strings.TrimPrefix(backend, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := start(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, up, 2, o)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
		t.Skipf("this kernel's io_uring lacks a feature of the variant: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// echoPath answers every request with its path as the body (Content-Length set).
var echoPath = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, r.URL.Path)
})

// clients runs n well-behaved clients of reqs GETs each against url, every fresh-th of them
// on a new connection per request, and fails the test for any response that is not the
// client's own path.
func clients(t *testing.T, url string, n, reqs, fresh int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: i%fresh == 0}, Timeout: 5 * time.Second}
		wg.Go(func() {
			defer c.CloseIdleConnections()
			for j := range reqs {
				path := fmt.Sprintf("/c%d/r%d", i, j)
				body, err := get(c, url+path)
				if err != nil || body != path {
					if failed.Add(1) < 5 {
						t.Errorf("GET %s: %q, %v", path, body, err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// TestProxy sends concurrent requests over keep-alive connections and over a new connection
// each (so slots and file descriptors are reused all the time) and checks that every
// client gets the response to its own request.
func TestProxy(t *testing.T) {
	backend := httptest.NewServer(echoPath)
	t.Cleanup(backend.Close) // after the parallel subtests
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			clients(t, proxy(t, backend.URL, v.opt), 16, 40, 4)
		})
	}
}

// TestReusePeek: the backend closes idle connections after 50 ms and the client waits
// longer between requests, so every pooled upstream connection is dead when the next
// request comes. The reuse check must find that out before the request is sent on it: a
// request sent on such a connection gets no response and the client's connection is closed.
// The client is one raw keep-alive connection (net/http's client would retry the GET).
func TestReusePeek(t *testing.T) {
	backend := httptest.NewUnstartedServer(echoPath)
	backend.Config.IdleTimeout = 50 * time.Millisecond
	backend.Start()
	t.Cleanup(backend.Close) // after the parallel subtests
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			url := proxy(t, backend.URL, v.opt)
			conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for j := range 6 {
				if j > 0 {
					time.Sleep(150 * time.Millisecond)
				}
				path := fmt.Sprintf("/r%d", j)
				fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("GET %s after the backend closed the pooled connection: %v", path, err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != path {
					t.Fatalf("GET %s: %q, %v", path, body, err)
				}
			}
		})
	}
}

// TestClientGoneMidExchange: clients that close their connection while their request is at
// a slow backend leave operations in flight on both of their sockets (the upstream's
// receive, their own) while new connections take their file descriptors. Those late
// completions must not reach the new connections: every well-behaved client still gets its
// own responses, on each variant.
func TestClientGoneMidExchange(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(backend.Close) // after the parallel subtests
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			url := proxy(t, backend.URL, v.opt)
			addr := strings.TrimPrefix(url, "http://")
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for range 4 { // impatient clients
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						conn, err := net.DialTimeout("tcp", addr, time.Second)
						if err != nil {
							continue
						}
						io.WriteString(conn, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
						time.Sleep(time.Millisecond)
						conn.Close()
					}
				})
			}
			clients(t, url, 8, 15, 2)
			close(stop)
			wg.Wait()
		})
	}
}

// TestResponseLen pins the framing the proxy relies on.
func TestResponseLen(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want int
		keep bool
		err  error
	}{
		{"complete", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 41, true, nil},
		{"head incomplete", "HTTP/1.1 200 OK\r\nContent-Len", 0, false, nil},
		{"case-insensitive name", "HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\n", 42, true, nil},
		{"connection close", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n", 57, false, nil},
		{"no length", "HTTP/1.1 200 OK\r\n\r\n", 0, false, errBig},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, false, errBig},
		{"too large", "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n", 0, false, errBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, keep, err := responseLen([]byte(tc.in))
			if got != tc.want || keep != tc.keep || !errors.Is(err, tc.err) {
				t.Errorf("responseLen = %d, %v, %v; want %d, %v, %v", got, keep, err, tc.want, tc.keep, tc.err)
			}
		})
	}
}
