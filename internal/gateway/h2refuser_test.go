package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"sluice/internal/testutil"
)

// resettingRefuser starts a server that reads the HTTP/2 preface's request line and then
// the client's frames until its DATA is well under way (readBeyond bytes), answers a 400
// in HTTP/1.1 when answer is set, and closes with the rest of the client's frames unread:
// its kernel resets the connection, and the client's writes still going meet that reset,
// as against an HTTP/1.1 server that closes without draining (unlike http1Refuser). It
// counts the connections it accepted.
func resettingRefuser(t *testing.T, answer bool) (string, *atomic.Int64) {
	t.Helper()
	const readBeyond = 24 << 10 // the HEADERS and some DATA: the body's writer is still at it
	var conns atomic.Int64
	addr := serveConns(t, func(c net.Conn) { // closed on return, input unread: a reset
		conns.Add(1)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		for { // the request line, a byte a read: nothing after it is taken
			if _, err := c.Read(b); err != nil {
				return
			}
			if b[0] == '\n' {
				break
			}
		}
		if _, err := io.CopyN(io.Discard, c, readBeyond); err != nil {
			return
		}
		if answer {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
	})
	return addr, &conns
}

// TestGRPCH2CUpstreamHTTP1Resets: an h2c target that is an HTTP/1.1 server answering the
// preface with a 400 and resetting the connection while the gateway still writes a call's
// large body fails the call as upstream_h2_unavailable, never processed, whichever the
// gateway saw first, the failed write or the status line: alone, UNAVAILABLE in every call;
// beside an h2c target, every call is sent there and succeeds. Before, a call whose write
// met the reset first failed as upstream_reset_before_response, not retried.
func TestGRPCH2CUpstreamHTTP1Resets(t *testing.T) {
	const calls = 40
	payload := &testgrpc.Payload{Body: make([]byte, 1<<20)}
	for _, tc := range []struct {
		name   string
		beside bool
		code   codes.Code
	}{
		{name: "alone", code: codes.Unavailable},
		{name: "beside an h2c one", beside: true, code: codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h1, conns := resettingRefuser(t, true)
			targets := `[{address: "` + h1 + `"}]`
			if tc.beside {
				targets = `[{address: "` + h1 + `"}, {address: "{{backend}}"}]`
			}
			// buffer_body: the 1 MB call is held whole, to be sent again (64 KB by default); the
			// budget lets every call be sent again.
			yaml := strings.Replace(grpcGatewayYAML, `targets: [{address: "{{backend}}"}]`, "targets: "+targets+"\n    retry: {buffer_body: 2097152, budget_min_per_second: 1000}", 1)
			c, _ := streamGatewayYAML(t, yaml)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			failed := 0
			for i := range calls {
				_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 1, Payload: payload})
				if st := status.Convert(err); st.Code() != tc.code || tc.code != codes.OK && st.Message() != "upstream_h2_unavailable" {
					t.Errorf("call %d: %v %q; want %v", i, st.Code(), st.Message(), tc.code)
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("%d of %d calls failed", failed, calls)
			}
			if conns.Load() == 0 {
				t.Errorf("the HTTP/1.1 target took no connection")
			}
		})
	}
}

// TestH2CUpstreamHTTP1Resets: a plain POST with a large body, as the gRPC calls of
// TestGRPCH2CUpstreamHTTP1Resets: beside an h2c target, every one is answered by it
// (processed once); and the conservative case kept, a target that resets while the body is
// written without answering anything: the POST may have been processed, so it fails as
// upstream_reset_before_response and is not sent again (one connection each).
func TestH2CUpstreamHTTP1Resets(t *testing.T) {
	const requests = 40
	// retry.buffer_body holds the 1 MB body whole, to be sent again (64 KB by default); the
	// budget lets every request be sent again.
	b, err := testutil.NewRacyH2(testutil.RacyH2Options{HeaderTableSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	body := bytes.Repeat([]byte("x"), 1<<20)
	for _, tc := range []struct {
		name    string
		answer  bool // the target answers the preface with a 400
		beside  bool // an h2c target beside it
		status  int
		code    string // the gateway's reason, when it fails
		perConn bool   // one connection to the resetting target per request: none was sent again
	}{
		{name: "HTTP/1.1 400 then reset, beside an h2c one", answer: true, beside: true, status: 200},
		{name: "HTTP/1.1 400 then reset, alone", answer: true, status: 502, code: "upstream_h2_unavailable"},
		{name: "reset without an answer", status: 502, code: "upstream_reset_before_response", perConn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h1, conns := resettingRefuser(t, tc.answer)
			targets := `[{address: "` + h1 + `"}]`
			if tc.beside {
				targets = `[{address: "` + h1 + `"}, {address: "` + b.Addr() + `"}]`
			}
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: h2
    targets: `+targets+`
    protocol: h2c
    retry: {buffer_body: 2097152, budget_min_per_second: 1000}
routes:
  - id: all
    upstream: h2
`, nil)
			c := newClient()
			for i := range requests {
				id := fmt.Sprintf("refuser-%d-%s", i, strings.ReplaceAll(tc.name, " ", "-"))
				req, _ := http.NewRequest("POST", tg.url("/r"), bytes.NewReader(body))
				req.Header.Set("X-Test-Id", id)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				wantAnswer(t, resp, tc.status, tc.code)
				if n := b.Processed(id); tc.beside && n != 1 {
					t.Errorf("request %d processed %d times by the h2c target; want 1", i, n)
				}
				if n := conns.Load(); tc.perConn && n != int64(i+1) {
					t.Fatalf("request %d: %d connections to the resetting target; want %d (sent once each)", i, n, i+1)
				}
			}
			if conns.Load() == 0 {
				t.Errorf("the resetting target took no connection")
			}
		})
	}
}
