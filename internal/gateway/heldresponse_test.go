package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPipelinedDuringExchangeIsAnswered: a kept-alive response's last bytes go out inside the
// wait for the next request (server.Exchange.holdable, netio.Conn.HoldNextWrite), whose
// poller call resets the socket's readiness first. A pipelining client's next request that
// arrived while the previous one was still upstream loses its readiness event there; the
// idle wait's second stage must still find it, so it is answered within moments, not after
// the idle timeout.
func TestPipelinedDuringExchangeIsAnswered(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for round := range 3 {
		io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
		<-arrived
		io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n") // pipelined, while /slow is upstream
		time.Sleep(20 * time.Millisecond)                             // let it reach the gateway's socket
		start := time.Now()
		release <- struct{}{}
		for _, want := range []string{"/slow", "/fast"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, want, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("round %d: got %d %q, want 200 %q", round, resp.StatusCode, body, want)
			}
		}
		// The second stage starts after idleFastWait (10 ms, up to 10 ms late); the idle
		// timeout is a minute. Seconds separate the two on any machine.
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("round %d: the pipelined request waited %v", round, d)
		}
	}
}
