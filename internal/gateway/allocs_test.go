package gateway

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// TestProxyPathAllocatesNothing pins issue #8's allocation figure: a proxied request through
// 20 routes with the access log and metrics on makes no heap allocation in the gateway once
// its pools are warm. The backend and the client are raw loops that allocate nothing
// themselves, so the count is the gateway's (testing.AllocsPerRun counts every goroutine).
func TestProxyPathAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	be := rawBackend(t)
	addr := benchGateway(t, benchConfig(be, 20), true)
	c := dialClient(t, addr, "/svc19/items")
	defer c.conn.Close()
	allocs := roundTripAllocs(t, c)
	// A per-request allocation would show as >= 1; background goroutines (the pool's
	// sweeper, the access log's flusher) may add a stray one over the 2,000 runs.
	if allocs >= 0.5 {
		t.Fatalf("%.2f heap allocations per proxied request, want 0", allocs)
	}
	t.Logf("%.3f allocations per proxied request", allocs)
}

// TestProxyPathWithBodyAllocatesNothing pins the same figure for requests with bodies: a
// Content-Length body that fits the retry buffer (1 KiB), one above it (100 KiB: what has
// arrived of its first 64 KiB is read ahead, the rest spliced), and a chunked body, each
// proxied to a keep-alive backend, each with a browser's user agent.
// The 100 KiB body also covers the splice path (netio.splice's state and the proxy's
// deadline callbacks are bound once, not made per request).
func TestProxyPathWithBodyAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	addr := benchGateway(t, benchConfig(rawBackend(t), 20), true)
	// A browser's user agent: longer than the 32 bytes Go converts to a string on the stack.
	head := "POST /svc19/items HTTP/1.1\r\nHost: bench.example\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n"
	chunk := strings.Repeat("c", 512)
	cases := []struct{ name, req string }{
		{name: "content-length 1 KiB", req: head + "Content-Length: 1024\r\n\r\n" + strings.Repeat("b", 1<<10)},
		{name: "content-length 100 KiB", req: head + "Content-Length: 102400\r\n\r\n" + strings.Repeat("b", 100<<10)},
		{name: "chunked 2 x 512 B", req: head + "Transfer-Encoding: chunked\r\n\r\n200\r\n" + chunk + "\r\n200\r\n" + chunk + "\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialClient(t, addr, "/")
			defer c.conn.Close()
			c.req = []byte(tc.req)
			if allocs := roundTripAllocs(t, c); allocs != 0 {
				t.Errorf("%.2f heap allocations per proxied request, want 0", allocs)
			}
		})
	}
}

// roundTripAllocs warms the gateway's pools with c's request and returns the heap
// allocations per round trip over 2,000 more.
func roundTripAllocs(t *testing.T, c *rawClient) float64 {
	t.Helper()
	for range 200 { // warm the pools (connections, buffers, per-request state)
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	}
	return testing.AllocsPerRun(2000, func() {
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	})
}

// rawBackend answers every request on a keep-alive connection with a fixed 300-byte response
// after reading its body (Content-Length or chunked), allocating nothing per request.
func rawBackend(t testing.TB) string {
	t.Helper()
	body := strings.Repeat("x", 300)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 8<<10)
		for {
			size, chunked, err := readRawHead(br)
			if err == nil {
				err = discardRawBody(br, size, chunked)
			}
			if err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

var (
	contentLengthField = []byte("content-length:")
	chunkedField       = []byte("transfer-encoding: chunked")
)

// readRawHead reads a request head and returns its body framing.
func readRawHead(br *bufio.Reader) (size int64, chunked bool, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			return size, chunked, nil
		case len(line) > len(contentLengthField) && bytes.EqualFold(line[:len(contentLengthField)], contentLengthField):
			for _, ch := range bytes.TrimSpace(line[len(contentLengthField):]) {
				size = size*10 + int64(ch-'0')
			}
		case bytes.EqualFold(line, chunkedField):
			chunked = true
		}
	}
}

// discardRawBody reads and drops a body of size bytes, or a chunked one (trailers included).
func discardRawBody(br *bufio.Reader, size int64, chunked bool) error {
	if !chunked {
		_, err := br.Discard(int(size))
		return err
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		n := 0
		for _, ch := range bytes.TrimRight(line, "\r\n") {
			if ch == ';' {
				break
			}
			n = n*16 + int(unhex(ch))
		}
		if n == 0 {
			break
		}
		if _, err := br.Discard(n + 2); err != nil { // the data and its CRLF
			return err
		}
	}
	for { // trailer fields, up to the empty line
		line, err := br.ReadSlice('\n')
		if err != nil || len(line) <= 2 {
			return err
		}
	}
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
