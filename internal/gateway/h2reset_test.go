package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestH2ResetWhileWaitingIsClientGone (h2, h2c): an HTTP/2 client that resets its stream
// while the gateway waits for an HTTP/1.1 backend's answer is logged as gone (499, "client
// reset the HTTP/2 stream"), not as a gateway failure, and the backend's request is
// interrupted. The stream's context is made only when needed (server.streamCtx): on a
// pooled upstream connection (no dial, which would make it) it is made after the reset, by
// the proxy's check of Err, and must then carry the reset as its cause.
func TestH2ResetWhileWaitingIsClientGone(t *testing.T) {
	arrived, ended := make(chan struct{}, 4), make(chan struct{}, 4)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done(): // the gateway closed the upstream connection
			ended <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(be.Close)
	for _, useTLS := range []bool{false, true} {
		s := startH2(t, useTLS, be.Listener.Addr().String(), "")
		client := s.client()
		resp, err := client.Get(s.url("/warm")) // the upstream connection the next request reuses
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/wait"), nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the request did not reach the backend")
		}
		cancel() // RST_STREAM CANCEL while the gateway waits for the head
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("tls %v: client: %v, want its own cancel", useTLS, err)
		}
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("tls %v: the backend's request was not interrupted", useTLS)
		}
		l := s.accessLines(2)[1]
		if l["tries"].([]any)[0].(map[string]any)["reused"] != true {
			t.Fatalf("tls %v: access line %v: want the pooled upstream connection reused", useTLS, l)
		}
		if l["status"] != 499.0 || !strings.Contains(l["error"].(string), "client reset the HTTP/2 stream") {
			t.Errorf("tls %v: access line %v: want status 499 and the client's reset", useTLS, l)
		}
	}
}
