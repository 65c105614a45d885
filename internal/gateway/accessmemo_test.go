package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAccessLogRunsFollowEachRequest: the runs of fields a Line remembers (client_ip,
// method, host; http_version, user_agent; route, upstream, target) never carry one
// request's values onto another's line. One kept-alive connection sends requests that
// change one of them at a time, to values of the same length (so a comparison of lengths
// alone would match), a user agent absent and then present but empty, and back to the
// first request's values; the host and user agent sit at the same offsets of the
// connection's read buffer each time, so a memo that kept the request's strings instead
// of copies would compare the new request with itself.
func TestAccessLogRunsFollowEachRequest(t *testing.T) {
	beA, beB := echoBackend(t, "a"), echoBackend(t, "b")
	yaml := `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: up-a
    targets:
      - address: {{a}}
  - id: up-b
    targets:
      - address: {{b}}
routes:
  - id: r-one
    match: {path_prefix: /one}
    upstream: up-a
  - id: r-two
    upstream: up-b
`
	tg := startGateway(t, yaml, map[string]string{"a": hostport(beA), "b": hostport(beB)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)

	type want struct{ method, path, host, ua, route, upstream, target string }
	const absent = "(absent)"
	steps := []want{
		{"GET", "/one", "h1.example", "agent-1", "r-one", "up-a", hostport(beA)},
		{"GET", "/one", "h2.example", "agent-1", "r-one", "up-a", hostport(beA)}, // host, same length
		{"GET", "/one", "h2.example", "agent-2", "r-one", "up-a", hostport(beA)}, // user agent, same length
		{"PUT", "/one", "h2.example", "agent-2", "r-one", "up-a", hostport(beA)}, // method, same length
		{"PUT", "/two", "h2.example", "agent-2", "r-two", "up-b", hostport(beB)}, // route, upstream, target
		{"PUT", "/two", "h2.example", absent, "r-two", "up-b", hostport(beB)},
		{"PUT", "/two", "h2.example", "", "r-two", "up-b", hostport(beB)},
		{"GET", "/one", "h1.example", "agent-1", "r-one", "up-a", hostport(beA)}, // the first again
		{"GET", "/one", "h1.example", "agent-1", "r-one", "up-a", hostport(beA)}, // and once more
	}
	// Each step is sent several times: lines are built in pooled Lines (one per P, in
	// practice), so that the first request of a step meets, whichever P it runs on, a memo
	// that holds the step before's values, and the repeats read the step's own.
	const repeats = 4
	for i := range len(steps) * repeats {
		s := steps[i/repeats]
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n", s.method, s.path, s.host)
		if s.ua != absent {
			head += "User-Agent: " + s.ua + "\r\n"
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, head+"Content-Length: 0\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		tg.rawAccessLines(i + 1) // lines in request order: one request at a time
	}
	lines := tg.accessLines(len(steps) * repeats)
	for i, l := range lines {
		s := steps[i/repeats]
		fields := map[string]any{"method": s.method, "path": s.path, "host": s.host, "user_agent": s.ua,
			"route": s.route, "upstream": s.upstream, "target": s.target, "http_version": "HTTP/1.1", "client_ip": "127.0.0.1"}
		if s.ua == absent {
			fields["user_agent"] = nil
		}
		for k, v := range fields {
			if l[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v\n%v", i, k, l[k], v, l)
			}
		}
	}
}
