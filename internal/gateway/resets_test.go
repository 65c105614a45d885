package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// partialResetBackend resets the connection the first time it sees each request id, after
// reading the head (path /head) or the head and 1 KiB of the body (path /body), without
// answering; a request it has started before is answered.
func partialResetBackend(t *testing.T) *testutil.FaultBackend {
	return testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		if n > 1 {
			return testutil.Fault{}
		}
		switch req.URL.Path {
		case "/head":
			return testutil.Fault{Reset: true}
		case "/body":
			return testutil.Fault{Reset: true, ReadBody: 1 << 10}
		}
		return testutil.Fault{}
	})
}

// gotHeader is the X-Got value of a FaultBackend that read body in full.
func gotHeader(body []byte) string {
	sum := sha256.Sum256(body)
	return strconv.Itoa(len(body)) + ":" + hex.EncodeToString(sum[:])[:16]
}

// TestRetryAfterPartialRead: the backend read the request head, or the head and part of the
// body, then reset the connection without answering. The request may have been acted on, so
// only a request that is safe to repeat (idempotent, keyed, or on a route that opted in) is
// sent again, and only with its whole body (docs/retries.md; reset_before_response is in the
// default retry.on). The backend counts how many times it started each request.
//
// The 8 MiB rows go to a route that buffers 16 MiB: the backend stops reading while the
// gateway is still writing the body, so the failure is seen on the write, with part of the
// request sent, and must be judged like a reset seen on the read.
func TestRetryAfterPartialRead(t *testing.T) {
	be := partialResetBackend(t)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: up
    targets: [{address: {{b}}}]
    retry: {backoff_base: 1ms, backoff_max: 5ms}
routes:
  - id: optin
    match: {path_prefix: /optin/}
    upstream: up
    rewrite: {strip_prefix: /optin}
    retry: {non_idempotent: true}
  - id: big
    match: {path_prefix: /big/}
    upstream: up
    rewrite: {strip_prefix: /big}
    retry: {buffer_body: 16777216}
  - id: default
    upstream: up
`, map[string]string{"b": be.Addr()})
	small, big := randomBytes(4<<10), randomBytes(8<<20)
	cases := []struct {
		name    string
		method  string
		path    string
		body    []byte
		key     bool // sends an Idempotency-Key
		status  int
		reason  string
		started int  // times the backend started the request
		onWrite bool // the final failure must have been met writing the request
	}{
		{name: "GET after its head is retried", method: "GET", path: "/head", status: 200, started: 2},
		{name: "PUT after part of its body is retried", method: "PUT", path: "/body", body: small, status: 200, started: 2},
		{name: "DELETE after its head is retried", method: "DELETE", path: "/head", status: 200, started: 2},
		{name: "POST after part of its body is not retried", method: "POST", path: "/body", body: small,
			status: 502, reason: "upstream_reset_before_response", started: 1},
		{name: "POST after its head is not retried", method: "POST", path: "/head", body: small,
			status: 502, reason: "upstream_reset_before_response", started: 1},
		{name: "PATCH after part of its body is not retried", method: "PATCH", path: "/body", body: small,
			status: 502, reason: "upstream_reset_before_response", started: 1},
		{name: "POST with an idempotency key is retried", method: "POST", path: "/body", body: small, key: true, status: 200, started: 2},
		{name: "POST on an opted-in route is retried", method: "POST", path: "/optin/body", body: small, status: 200, started: 2},
		{name: "POST cut while writing its body is not retried", method: "POST", path: "/big/body", body: big,
			status: 502, reason: "upstream_reset_before_response", started: 1, onWrite: true},
		{name: "PUT cut while writing its body is retried whole", method: "PUT", path: "/big/body", body: big,
			status: 200, started: 2},
	}
	c := newClient()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("partial-%d", i)
			resp := sendWithID(t, c, tc.method, tg.url(tc.path), bytes.NewReader(tc.body), id, tc.key)
			wantAnswer(t, resp, tc.status, tc.reason)
			if n := be.Started(id); n != tc.started {
				t.Errorf("backend started the request %d times, want %d", n, tc.started)
			}
			if tc.status == 200 && resp.Header.Get("X-Got") != gotHeader(tc.body) {
				t.Errorf("the retry delivered body %q, want %q", resp.Header.Get("X-Got"), gotHeader(tc.body))
			}
			l := tg.accessLines(i + 1)[i]
			if tries, _ := l["tries"].([]any); len(tries) == 0 || tries[0].(map[string]any)["outcome"] != "upstream_reset_before_response" {
				t.Errorf("tries %v, want the first one upstream_reset_before_response", l["tries"])
			}
			// The cause says whether the reset was met writing or reading.
			if cause, _ := l["error"].(string); tc.onWrite && !strings.Contains(cause, "write") {
				t.Errorf("error %q: the reset was not met while writing the body", cause)
			}
		})
	}
}

// TestNoRetryOfABodyThatCannotBeResent: on a route that opted in to retrying non-idempotent
// requests, a POST whose body is not held in full cannot be sent again once part of it went
// out: a Content-Length body larger than retry.buffer_body, and a chunked body still arriving
// when the first attempt started. The backend read the head and 1 KiB, then reset: 502, run
// once.
func TestNoRetryOfABodyThatCannotBeResent(t *testing.T) {
	be := partialResetBackend(t)
	tg := upstreamGateway(t, be.Addr(), "retry: {backoff_base: 1ms, backoff_max: 5ms, non_idempotent: true, buffer_body: 16384}",
		"timeouts: {read: 3s}")
	large := randomBytes(256 << 10)
	cases := []struct {
		name string
		// send writes the request after its head; ready is closed once the backend has
		// started it.
		chunked bool
		send    func(c *clientConn, ready <-chan struct{})
	}{
		{name: "Content-Length body above buffer_body", send: func(c *clientConn, _ <-chan struct{}) {
			c.Write(large)
		}},
		{name: "chunked body still arriving", chunked: true, send: func(c *clientConn, ready <-chan struct{}) {
			fmt.Fprintf(c, "800\r\n%s\r\n", bytes.Repeat([]byte("a"), 2048))
			<-ready
			fmt.Fprintf(c, "800\r\n%s\r\n0\r\n\r\n", bytes.Repeat([]byte("b"), 2048))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("unbuffered-%d", i)
			conn := openConn(t, tg.addr)
			framing := "Content-Length: " + strconv.Itoa(len(large))
			if tc.chunked {
				framing = "Transfer-Encoding: chunked"
			}
			fmt.Fprintf(conn, "POST /body HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n%s\r\n\r\n", id, framing)
			ready := make(chan struct{})
			go tc.send(conn, ready) // may block, then fail, once the gateway gives up
			testutil.WaitFor(t, 3*time.Second, "the request to reach the backend", func() bool { return be.Started(id) >= 1 })
			close(ready)
			resp, err := conn.response()
			if err != nil {
				t.Fatal(err)
			}
			wantAnswer(t, resp, 502, "upstream_reset_before_response")
			if n := be.Started(id); n != 1 {
				t.Errorf("backend started the request %d times, want 1", n)
			}
			l := tg.accessLines(i + 1)[i]
			if tries, _ := l["tries"].([]any); len(tries) != 1 {
				t.Errorf("tries %v, want one", l["tries"])
			}
		})
	}
}
