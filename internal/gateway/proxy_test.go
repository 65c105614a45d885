package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

func TestProxyForwardsRequestAndResponse(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	c := newClient()

	req, _ := http.NewRequest("POST", tg.url("/users/7?x=1&y=%20z"), strings.NewReader("hello body"))
	req.Host = "api.example.com"
	req.Header.Set("X-Forwarded-For", "10.1.1.1")
	req.Header.Set("Connection", "X-Secret, keep-alive")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("X-Custom", "kept")
	resp, info := getEcho(t, c, req)
	mustStatus(t, resp, 200)

	if info.Method != "POST" || info.URI != "/users/7?x=1&y=%20z" || info.Body != "hello body" {
		t.Errorf("backend saw %s %s body %q", info.Method, info.URI, info.Body)
	}
	if info.Host != "api.example.com" {
		t.Errorf("Host = %q, want the client's", info.Host)
	}
	h := http.Header(info.Header)
	// The listener trusts no proxy: the client's own X-Forwarded-For is not vouched for by
	// anyone and is dropped (realip; TestRealClientIP covers trusted peers).
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != "api.example.com" {
		t.Errorf("X-Forwarded-Proto/Host = %q/%q", h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
	}
	for _, hop := range []string{"X-Secret", "Keep-Alive", "Connection"} {
		if v := h.Get(hop); v != "" {
			t.Errorf("hop-by-hop %s forwarded: %q", hop, v)
		}
	}
	if h.Get("X-Custom") != "kept" {
		t.Errorf("X-Custom not forwarded")
	}
	id := h.Get("X-Request-Id")
	if id == "" || resp.Header.Get("X-Request-Id") != id {
		t.Errorf("request id: backend %q, response %q", id, resp.Header.Get("X-Request-Id"))
	}
	if resp.Header.Get("X-Backend") != "a" {
		t.Errorf("response header X-Backend missing")
	}

	// A client-supplied request id is passed through.
	req, _ = http.NewRequest("GET", tg.url("/"), nil)
	req.Header.Set("X-Request-Id", "client-id-42")
	_, info = getEcho(t, c, req)
	if got := http.Header(info.Header).Get("X-Request-Id"); got != "client-id-42" {
		t.Errorf("X-Request-Id = %q, want client-id-42", got)
	}

	lines := tg.accessLines(2)
	l := lines[0]
	for _, k := range []string{"time", "request_id", "method", "path", "status", "route", "upstream", "target", "duration_ms", "upstream_ms", "bytes_out"} {
		if _, ok := l[k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, l)
		}
	}
	if l["route"] != "all" || l["upstream"] != "echo" || l["status"] != float64(200) || l["request_id"] != id {
		t.Errorf("access log line = %v", l)
	}
}

func TestProxyNoRoute404(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: echo, targets: [{address: {{b}}}]}]
routes:
  - id: api
    match: {hosts: [api.example.com], path_prefix: /api/}
    upstream: echo
`, map[string]string{"b": hostport(be)})
	resp, err := http.Get(tg.url("/nothing"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustStatus(t, resp, 404)
	if resp.Header.Get("X-Sluice-Error") != "no_route" || !strings.Contains(string(body), `"error":"no_route"`) {
		t.Errorf("404 body %q header %q", body, resp.Header.Get("X-Sluice-Error"))
	}
}

func TestProxyStreamsLargeBodiesBothWays(t *testing.T) {
	const size = 8 << 20
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got", fmt.Sprint(n))
		chunk := strings.Repeat("z", 64<<10)
		for i := 0; i < size/len(chunk); i++ {
			io.WriteString(w, chunk)
		}
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("a", size))
		if chunked {
			body = io.MultiReader(body) // hides the length: the client sends chunked
		}
		req, _ := http.NewRequest("PUT", tg.url("/up"), body)
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Got") != fmt.Sprint(size) || n != size {
			t.Errorf("chunked=%v: backend got %s bytes, client got %d, want %d", chunked, resp.Header.Get("X-Got"), n, size)
		}
	}
}

func TestProxyTrailersBothWays(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Resp-Sum")
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Req-Sum"))
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Resp-Sum", "r42")
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	raw := "POST / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nTrailer: X-Req-Sum\r\n\r\n" +
		"4\r\nabcd\r\n0\r\nX-Req-Sum: q7\r\n\r\n"
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if got := resp.Header.Get("X-Req-Trailer"); got != "q7" {
		t.Errorf("backend saw request trailer %q, want q7", got)
	}
	if got := resp.Trailer.Get("X-Resp-Sum"); got != "r42" {
		t.Errorf("client got response trailer %q, want r42", got)
	}
}

func TestProxyServerSentEventsFlushImmediately(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	}))
	defer be.Close()
	defer close(release)
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	resp, err := http.Get(tg.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Errorf("first event = %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("first event not delivered while the backend holds the stream open")
	}
}

func TestProxyExpectContinue(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue before the body", line, err)
	}
	br.ReadString('\n')
	io.WriteString(conn, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"body":"hello"`) {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
}

func TestProxyBodilessResponses(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	// Pipeline three requests on one connection: a stray body byte would corrupt the next.
	out := rawExchange(t, tg.addr, "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /204 HTTP/1.1\r\nHost: h\r\n\r\n"+
		"GET /304 HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 5*time.Second)
	br := bufio.NewReader(strings.NewReader(out))
	for i, want := range []struct {
		method string
		status int
		body   string
	}{{"HEAD", 200, ""}, {"GET", 204, ""}, {"GET", 304, ""}, {"GET", 200, "hello world"}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("response %d: %v\nraw: %q", i, err, out)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want.status || string(body) != want.body {
			t.Errorf("response %d: %d %q, want %d %q", i, resp.StatusCode, body, want.status, want.body)
		}
		if i == 0 && resp.ContentLength != 11 {
			t.Errorf("HEAD Content-Length = %d, want 11", resp.ContentLength)
		}
	}
}

// TestProxyClientDisconnectCancelsUpstream: a client that resets its connection while the
// backend works is gone: the upstream request is canceled, nothing is written, and the access
// log says 499 with no bytes sent. (A client that only half-closes is answered: see
// TestHalfClosedClientIsAnswered.)
func TestProxyClientDisconnectCancelsUpstream(t *testing.T) {
	arrived, canceled := make(chan struct{}), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(10 * time.Second):
		}
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	select {
	case <-arrived:
	case <-time.After(3 * time.Second):
		t.Fatal("the request did not reach the backend")
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close() // RST
	select {
	case <-canceled:
	case <-time.After(3 * time.Second):
		t.Fatal("backend request not canceled after the client left")
	}
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 499, "bytes_out": 0, "reason": "client_body_error"})
}

func TestProxyLimitsAndTimeouts(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(400 * time.Millisecond) // the slowness under test: beyond the route's 100ms read timeout
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	dead := testutil.RefusingAddr(t)
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    max_header_bytes: 2048
    max_body_bytes: 1000
upstreams:
  - id: echo
    targets: [{address: {{b}}}]
  - id: dead
    targets: [{address: {{dead}}}]
routes:
  - id: dead
    match: {path_prefix: /dead}
    upstream: dead
  - id: small
    match: {path_prefix: /small}
    upstream: echo
    max_body_bytes: 10
  - id: slow
    match: {path: /slow}
    upstream: echo
    timeouts: {read: 100ms}
  - id: all
    upstream: echo
`, map[string]string{"b": hostport(be), "dead": dead})
	c := newClient()
	cases := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		header map[string]string
		status int
		reason string
	}{
		{name: "ok", method: "GET", path: "/x", status: 200},
		{name: "body over listener limit", method: "POST", path: "/x", body: strings.NewReader(strings.Repeat("a", 1001)), status: 413, reason: "request_body_too_large"},
		{name: "chunked body over route limit", method: "POST", path: "/small", body: io.MultiReader(strings.NewReader(strings.Repeat("a", 11))), status: 413, reason: "request_body_too_large"},
		{name: "headers over limit", method: "GET", path: "/x", header: map[string]string{"X-Big": strings.Repeat("b", 3000)}, status: 431, reason: "request_header_too_large"},
		{name: "read timeout", method: "GET", path: "/slow", status: 504, reason: "upstream_timeout"},
		{name: "connect refused", method: "GET", path: "/dead", status: 502, reason: "upstream_connect_refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tg.url(tc.path), tc.body)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mustStatus(t, resp, tc.status)
			if got := resp.Header.Get("X-Sluice-Error"); got != tc.reason {
				t.Errorf("X-Sluice-Error = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestProxyRewrites(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: echo, targets: [{address: {{b}}}]}]
routes:
  - id: strip
    match: {path_prefix: /api/}
    upstream: echo
    rewrite: {strip_prefix: /api, add_prefix: /v2}
  - id: regex
    match: {path_prefix: /old/}
    upstream: echo
    rewrite: {path_regex: "^/old/(.*)$", path_replacement: "/new/$1", host: fixed, host_value: internal.svc}
  - id: target-host
    match: {path: /th}
    upstream: echo
    rewrite:
      host: target
      set_headers: {X-Set: s1, User-Agent: sluice-test}
      add_headers: {X-Add: a1}
      remove_headers: [X-Drop]
`, map[string]string{"b": hostport(be)})
	c := newClient()
	cases := []struct {
		path, wantURI, wantHost string
	}{
		{"/api/users?q=1", "/v2/users?q=1", "client.example"},
		{"/old/a/b", "/new/a/b", "internal.svc"},
		{"/th", "/th", hostport(be)},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", tg.url(tc.path), nil)
		req.Host = "client.example"
		req.Header.Set("X-Drop", "gone")
		req.Header.Set("User-Agent", "original")
		resp, info := getEcho(t, c, req)
		mustStatus(t, resp, 200)
		if info.URI != tc.wantURI || info.Host != tc.wantHost {
			t.Errorf("%s: backend saw %s host %s, want %s host %s", tc.path, info.URI, info.Host, tc.wantURI, tc.wantHost)
		}
		if tc.path == "/th" {
			h := http.Header(info.Header)
			if h.Get("X-Set") != "s1" || h.Get("X-Add") != "a1" || h.Get("X-Drop") != "" || h.Get("User-Agent") != "sluice-test" {
				t.Errorf("header rewrites: %v", info.Header)
			}
		}
	}
}

func TestProxyBalancesWeighted(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: echo
    targets:
      - {address: {{a}}, weight: 3}
      - {address: {{b}}, weight: 1}
routes: [{id: all, upstream: echo}]
`, map[string]string{"a": hostport(a), "b": hostport(b)})
	c := newClient()
	counts := map[string]int{}
	for i := 0; i < 40; i++ {
		req, _ := http.NewRequest("GET", tg.url("/"), nil)
		_, info := getEcho(t, c, req)
		counts[info.Backend]++
	}
	if counts["a"] != 30 || counts["b"] != 10 {
		t.Errorf("distribution = %v, want a:30 b:10", counts)
	}
}

func TestProxyReusesUpstreamConnections(t *testing.T) {
	var accepted atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	be.Start()
	defer be.Close()
	for _, enabled := range []bool{true, false} {
		accepted.Store(0)
		tg := startGateway(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: echo, targets: [{address: {{b}}}], keepalive: {enabled: %v}}]
routes: [{id: all, upstream: echo}]
`, enabled), map[string]string{"b": hostport(be)})
		c := newClient()
		const n = 50
		for i := 0; i < n; i++ {
			resp, err := c.Get(tg.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got := accepted.Load()
		if enabled && got != 1 || !enabled && got != n {
			t.Errorf("keepalive enabled=%v: backend accepted %d connections for %d requests", enabled, got, n)
		}
	}
}
