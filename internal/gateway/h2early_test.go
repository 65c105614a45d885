package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestH2EarlyResponseWhileTheClientPauses: an HTTP/2 client sends the start of a request body
// and pauses; the HTTP/1.1 backend answers 401 before reading the body and stops reading. The
// answer reaches the client at once, as on an HTTP/1.1 connection (the stream's body waits
// are watched, proxy.BodyWatcher), not when the listener's read_timeout (60 s) ends the
// wait, and the request is not sent again: a final answer means it was processed.
func TestH2EarlyResponseWhileTheClientPauses(t *testing.T) {
	be, heads, conns := earlyBackend(t, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope", true)
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2Config(t, m.tls, "", `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b, timeouts: {read: 30s, write: 30s}}]
`, map[string]string{"b": be})
			before := conns.Load()
			pr, pw := io.Pipe()
			defer pw.Close() // the rest of the body never comes
			go pw.Write([]byte("abc"))
			req, _ := http.NewRequest("PUT", s.url("/up"), pr)
			start := time.Now()
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatalf("PUT: %v after %v", err, time.Since(start))
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != 401 || string(body) != "nope" {
				t.Errorf("got %d %q, want the backend's 401 \"nope\"", resp.StatusCode, body)
			}
			if took > 5*time.Second {
				t.Errorf("the answer took %v", took)
			}
			if head := received(t, heads); !strings.HasPrefix(head, "PUT /up HTTP/1.1\r\n") {
				t.Errorf("backend read %q", head)
			}
			if n := conns.Load() - before; n != 1 {
				t.Errorf("backend connections: %d, want 1 (no re-send)", n)
			}
			if l := s.accessLines(1)[0]; l["status"] != float64(401) || l["attempts"] != float64(1) {
				t.Errorf("access log: %v", l)
			}
		})
	}
}
