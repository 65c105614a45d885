package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/testutil"
)

// testGateway is an in-process gateway on 127.0.0.1 with its access log captured.
type testGateway struct {
	gw     *Gateway
	addr   string
	access *syncBuffer
	t      *testing.T
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// mustParse parses a YAML config; "{{name}}" placeholders are replaced from vars.
func mustParse(t *testing.T, yaml string, vars map[string]string) *config.Config {
	t.Helper()
	for k, v := range vars {
		yaml = strings.ReplaceAll(yaml, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

func startGateway(t *testing.T, yaml string, vars map[string]string) *testGateway {
	t.Helper()
	return startGatewayLog(t, yaml, vars, testLogger(t))
}

// startGatewayLog is startGateway with the gateway's logger.
func startGatewayLog(t *testing.T, yaml string, vars map[string]string, log *slog.Logger) *testGateway {
	t.Helper()
	cfg := mustParse(t, yaml, vars)
	if cfg.Admin.Address == config.DefaultAdminAddress {
		off := false
		cfg.Admin.Enabled = &off // tests that want the admin listener bind it on port 0
	}
	buf := &syncBuffer{}
	access := accesslog.New(buf)
	gw := New(log, access)
	if err := gw.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	tg := &testGateway{gw: gw, access: buf, t: t}
	for _, a := range gw.Addrs() {
		tg.addr = a.String()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		access.Close()
	})
	return tg
}

func (tg *testGateway) url(path string) string { return "http://" + tg.addr + path }

// accessLines returns the parsed access log lines so far (after a flush wait).
func (tg *testGateway) accessLines(want int) []map[string]any {
	tg.t.Helper()
	var lines []map[string]any
	testutil.WaitFor(tg.t, 3*time.Second, fmt.Sprintf("%d access log lines", want), func() bool {
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(tg.access.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				tg.t.Fatalf("access log line is not JSON: %v: %q", err, l)
			}
			lines = append(lines, m)
		}
		return len(lines) >= want
	})
	return lines
}

// echoInfo is what the echo backend reports about the request it received.
type echoInfo struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Host    string              `json:"host"`
	Header  map[string][]string `json:"header"`
	Body    string              `json:"body"`
	Trailer map[string][]string `json:"trailer"`
}

// echoBackend starts a net/http backend that answers with an echoInfo.
func echoBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		info := echoInfo{Backend: name, Method: r.Method, URI: r.RequestURI, Host: r.Host,
			Header: r.Header, Body: string(body), Trailer: r.Trailer}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// newClient returns an HTTP client with its own pool.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
}

func getEcho(t *testing.T, c *http.Client, req *http.Request) (*http.Response, echoInfo) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var info echoInfo
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("bad echo body %q: %v", body, err)
		}
	}
	return resp, info
}

// rawExchange sends raw bytes on a new connection and returns everything read until the
// gateway closes the connection or timeout passes.
func rawExchange(t *testing.T, addr, raw string, timeout time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(bufio.NewReader(c))
	return string(out)
}

func basicConfig(backend string) (string, map[string]string) {
	return `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
routes:
  - id: all
    upstream: echo
`, map[string]string{"backend": backend}
}

// sendWithID sends a request with X-Request-Id id (and Idempotency-Key id when key) and body
// (nil for none), reads and closes the response body, and returns the response; on a transport
// error it reports it and returns an empty response (it may run on another goroutine).
func sendWithID(t *testing.T, c *http.Client, method, url string, body io.Reader, id string, key bool) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("X-Request-Id", id)
	if key {
		req.Header.Set("Idempotency-Key", id)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return &http.Response{}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// wantAnswer reports when resp is not status with the X-Sluice-Error reason ("": none).
func wantAnswer(t *testing.T, resp *http.Response, status int, reason string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("X-Sluice-Error") != reason {
		t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Sluice-Error"), status, reason)
	}
}

func mustStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("status = %d, want %d (X-Sluice-Error %q)", resp.StatusCode, want, resp.Header.Get("X-Sluice-Error"))
	}
}

// serveConns listens on loopback and runs handle on each accepted connection, closing it
// when handle returns. It returns the address.
func serveConns(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echoGateway starts a gateway with one catch-all route to an echo backend; listener holds
// extra options of its listener ("read_header_timeout: 500ms"), or "".
func echoGateway(t *testing.T, listener string) *testGateway {
	t.Helper()
	if listener != "" {
		listener = ", " + listener
	}
	return startGateway(t, `
listeners: [{address: 127.0.0.1:0`+listener+`}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(echoBackend(t, "a"))})
}

// clientConn is a raw keep-alive connection to the gateway, for tests that control the bytes
// they send and when.
type clientConn struct {
	net.Conn
	br *bufio.Reader
	t  *testing.T
}

func openConn(t *testing.T, addr string) *clientConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &clientConn{Conn: c, br: bufio.NewReader(c), t: t}
}

// response reads the next response (within 5 s) and drains its body.
func (c *clientConn) response() (*http.Response, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// get sends a GET for path and returns its response, failing the test if none arrives.
func (c *clientConn) get(path string) *http.Response {
	c.t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path)
	resp, err := c.response()
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}
