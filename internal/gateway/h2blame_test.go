package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sluice/internal/reason"
)

// h2BlameYAML: one h2c target behind passive health that ejects at the first failure, and
// no panic mode, so that a single failure counted against the target shows as 503
// no_healthy_target on the next request.
const h2BlameYAML = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: be
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      passive: {consecutive_failures: 1, base_ejection: 30s}
      panic_threshold: 0
routes:
  - id: web
    upstream: be
    grpc_web: true
`

// streamingH2C is a Go h2c backend: /stream answers at once and then streams 100 chunks
// over a second; /grpc answers a gRPC head and one message at once, then reads the request
// body to its end and sends the trailers; anything else is "ok".
func streamingH2C(t *testing.T) string {
	t.Helper()
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			for i := range 100 {
				fmt.Fprintf(w, "chunk %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(10 * time.Millisecond)
			}
		case "/grpc":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write([]byte{0, 0, 0, 0, 2, 8, 1})
			w.(http.Flusher).Flush()
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Grpc-Status", "0")
		default:
			io.WriteString(w, "ok")
		}
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	return hostport(be)
}

// wantTargetServed fails t unless a plain request through tg still reaches the backend: the
// target was not ejected.
func wantTargetServed(t *testing.T, tg *testGateway) {
	t.Helper()
	resp, err := newClient().Get(tg.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("next request: %d %s; want 200 (the target was counted as failed and ejected)", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
}

// TestH2UpstreamClientGoneNotTargetFailure: a client that goes away while an HTTP/2
// upstream's response streams to it (a closed browser tab during a server-streaming call)
// is the client's doing (499): it must not count as a failure of the target, as on the
// HTTP/1.1 path. Counted, five such clients ejected a healthy target (one here).
func TestH2UpstreamClientGoneNotTargetFailure(t *testing.T) {
	tg := startGateway(t, h2BlameYAML, map[string]string{"backend": streamingH2C(t)})
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	c.Close() // gone mid-response
	time.Sleep(300 * time.Millisecond)
	wantTargetServed(t, tg)
}

// TestGRPCWebTextBadBodyAfterHead: a grpc-web-text body that turns out not to be base64
// after the backend already answered the head is still the client's fault: the client gets
// 400 bad_request (the HTTP/1.1 client's answer waits for its body, so nothing was sent yet),
// and the target is not counted as failed (it was ejected: a client could eject healthy
// targets with bad bodies).
func TestGRPCWebTextBadBodyAfterHead(t *testing.T) {
	tg := startGateway(t, h2BlameYAML, map[string]string{"backend": streamingH2C(t)})
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "AAAAAAAA") // valid: two groups
		time.Sleep(200 * time.Millisecond)
		io.WriteString(pw, "*AAA") // not base64
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", tg.url("/grpc"), pr)
	req.Header.Set("Content-Type", "application/grpc-web-text")
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e := resp.Header.Get("X-Sluice-Error"); e != "bad_request" {
		t.Errorf("%d, X-Sluice-Error %q; want bad_request", resp.StatusCode, e)
	}
	wantTargetServed(t, tg)
}

// TestH2UpstreamStreamCanceledNotTargetFailure: an HTTP/2 client that cancels a streaming
// call mid-response (RST_STREAM CANCEL: a gRPC client's deadline or cancel) ends the
// request's context while the gateway waits for the backend's next DATA. That body read
// failing is the client's doing, not the backend's: the target must not be counted as
// failed (it was: one canceled stream ejected it here, and every canceled server-streaming
// call counted against a healthy target).
func TestH2UpstreamStreamCanceledNotTargetFailure(t *testing.T) {
	yaml := strings.Replace(h2BlameYAML, "  - address: 127.0.0.1:0\n", "  - address: 127.0.0.1:0\n    protocols: [http1, h2c]\n", 1)
	tg := startGateway(t, yaml, map[string]string{"backend": streamingH2C(t)})
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", tg.url("/stream"), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("client spoke %s, want HTTP/2", resp.Proto)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "chunk 0") {
			t.Fatalf("call %d: first chunk %q, %v", i, line, err)
		}
		cancel() // RST_STREAM while the backend streams on
		resp.Body.Close()
	}
	time.Sleep(300 * time.Millisecond)
	wantTargetServed(t, tg)
	if log := tg.access.String(); strings.Contains(log, string(reason.ResetDuringResp)) || strings.Contains(log, string(reason.BadResponse)) {
		t.Errorf("a canceled stream was logged as the backend's failure:\n%s", log)
	}
	if log := tg.access.String(); strings.Count(log, "client reset the HTTP/2 stream") != 3 {
		t.Errorf("want 3 canceled calls logged as the client's reset:\n%s", log)
	}
}
