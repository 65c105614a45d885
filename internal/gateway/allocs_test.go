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
	for range 200 { // warm the pools (connections, buffers, per-request state)
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	})
	// A per-request allocation would show as >= 1; background goroutines (the pool's
	// sweeper, the access log's flusher) may add a stray one over the 2,000 runs.
	if allocs >= 0.5 {
		t.Fatalf("%.2f heap allocations per proxied request, want 0", allocs)
	}
	t.Logf("%.3f allocations per proxied request", allocs)
}

// rawBackend answers every GET on a keep-alive connection with a fixed 300-byte response,
// allocating nothing per request.
func rawBackend(t *testing.T) string {
	t.Helper()
	body := strings.Repeat("x", 300)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 8<<10)
		for {
			// Requests from the gateway here have no body: a head ends at an empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}
