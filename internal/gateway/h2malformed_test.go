package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestH2UpstreamMalformedResponse: a response head the HTTP/2 backend sent malformed is
// answered 502 upstream_bad_response, as HTTP/1.1 answers the same fault, and the request
// is not retried: the backend answered, so it processed the request. The route retries
// non-idempotent requests on reset_before_response, so a POST classified as a reset
// (the old answer) would run three times.
func TestH2UpstreamMalformedResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []string // the response's fields, after :status when status is set
	}{
		{"conflicting content-length", []string{":status", "200", "content-length", "5", "content-length", "6"}},
		{"invalid field name", []string{":status", "200", "bad name", "x"}},
		{"malformed status", []string{":status", "20x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			var streams atomic.Int64
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go answerStreamsWith(c, &streams, tc.head, "hello!")
				}
			}()
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: b
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    retry: {attempts: 3, on: [reset_before_request, reset_before_response], non_idempotent: true, backoff_base: 1ms, backoff_max: 2ms}
routes:
  - id: all
    upstream: b
`, map[string]string{"backend": ln.Addr().String()})
			resp, err := http.Post("http://"+tg.addr+"/x", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 502 || !bytes.Contains(body, []byte("upstream_bad_response")) {
				t.Errorf("a malformed HTTP/2 response: %d %q; want 502 upstream_bad_response", resp.StatusCode, body)
			}
			var line map[string]any
			testutil.WaitFor(t, 10*time.Second, "the POST's access line", func() bool {
				for _, l := range tg.accessLines(1) {
					if l["path"] == "/x" {
						line = l
						return true
					}
				}
				return false
			})
			if line["reason"] != "upstream_bad_response" || line["attempts"] != float64(1) {
				t.Errorf("access line reason %v, attempts %v; want upstream_bad_response, 1", line["reason"], line["attempts"])
			}
			if n := streams.Load(); n != 1 {
				t.Errorf("the backend got the POST %d times; want once (it answered: not retried)", n)
			}
		})
	}
}
