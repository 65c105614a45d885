package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/testutil"
)

// TestH2ConnectionFieldsFromHTTP1Backend: the connection-specific fields an HTTP/1.1
// backend may send (Connection and the fields it names, Keep-Alive, Proxy-Connection,
// Transfer-Encoding, Upgrade) never reach an HTTP/2 client, in the head or in the trailer
// section (RFC 9113 §8.2.2: a message with them is malformed, and strict clients reset the
// stream); the other fields do. Read with a raw framer, since a client library may drop
// them itself.
func TestH2ConnectionFieldsFromHTTP1Backend(t *testing.T) {
	for _, tc := range []struct{ name, resp string }{
		{"content-length", "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n" +
			"Proxy-Connection: keep-alive\r\nUpgrade: foo\r\nX-Keep: yes\r\nContent-Length: 2\r\n\r\nok"},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nTrailer: X-Sum\r\n" +
			"X-Keep: yes\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nConnection: close\r\nKeep-Alive: timeout=1\r\n" +
			"Transfer-Encoding: chunked\r\nUpgrade: foo\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startH2Config(t, false, "", `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": scriptBackend(t, nil, tc.resp)})
			fields, body := rawH2Get(t, s.addr, "/x", "te", "trailers")
			names := map[string]bool{}
			for _, f := range fields {
				names[f.Name] = true
			}
			for _, n := range []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "x-hop"} {
				if names[n] {
					t.Errorf("%q reached the HTTP/2 client: %v", n, fields)
				}
			}
			if !names["x-keep"] || body != "ok" {
				t.Errorf("fields %v, body %q; want x-keep and ok", fields, body)
			}
			if strings.HasPrefix(tc.name, "chunked") && !names["x-sum"] {
				t.Errorf("the trailer field x-sum is missing: %v", fields)
			}
		})
	}
}

// rawH2Get sends GET path with the fields h (name, value pairs) over a new h2c connection
// to addr, and returns every field of the response's header and trailer sections, and its
// body.
func rawH2Get(t *testing.T, addr, path string, h ...string) ([]hpack.HeaderField, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var blk bytes.Buffer
	enc := hpack.NewEncoder(&blk)
	kv := append([]string{":method", "GET", ":scheme", "http", ":authority", addr, ":path", path}, h...)
	for i := 0; i < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk.Bytes(), EndStream: true, EndHeaders: true})
	var fields []hpack.HeaderField
	var body strings.Builder
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v (so far %v %q)", err, fields, body.String())
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			fields = append(fields, f.Fields...)
			if f.StreamEnded() {
				return fields, body.String()
			}
		case *http2.DataFrame:
			body.Write(f.Data())
			if f.StreamEnded() {
				return fields, body.String()
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v (so far %v %q)", f.ErrCode, fields, body.String())
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// TestH2Features: an HTTP/2 client gets what an HTTP/1.1 one gets from the features above
// the frames (issue #16): host match on :authority, SNI, method and header matches, rewrites (fixed host, strip prefix,
// header edits), X-Forwarded-* with the right proto, the route's body limit on a body
// without content-length, compression, forward-auth (with the request's identity and its
// denial passed through), fault injection, rate limits and ip restrictions answered with
// their reasons, and an access line for each with http_version HTTP/2. Over h2 and h2c.
func TestH2Features(t *testing.T) {
	be := echoBackend(t, "a")
	var authSeen atomic.Pointer[http.Header]
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		authSeen.Store(&h)
		if strings.Contains(r.Header.Get("X-Forwarded-Uri"), "deny") {
			w.Header().Set("WWW-Authenticate", "Basic")
			w.WriteHeader(401)
			io.WriteString(w, "nope")
			return
		}
		w.Header().Set("X-User-Id", "u1")
	}))
	t.Cleanup(auth.Close)
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2Config(t, m.tls, "", `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes:
  - id: host
    upstream: b
    match: {hosts: [site.test], path_prefix: /host}
    rewrite: {host: fixed, host_value: inner.test, strip_prefix: /host, set_headers: {X-Set: v}, remove_headers: [X-Drop]}
  - id: sni
    upstream: b
    match: {path_prefix: /sni, tls: [{name: sni, exact: site.test}]}
  - id: blue
    upstream: b
    match: {path_prefix: /m, methods: [PUT], headers: [{name: X-Env, exact: blue}]}
  - id: small
    upstream: b
    match: {path_prefix: /small}
    max_body_bytes: 10
  - id: gz
    upstream: b
    match: {path_prefix: /gz}
    plugins: [{name: compress, config: {min_size: 1}}]
  - id: fa
    upstream: b
    match: {path_prefix: /fa}
    plugins: [{name: forward-auth, config: {address: "{{auth}}/auth", response_headers: [X-User-Id]}}]
  - id: fault
    upstream: b
    match: {path_prefix: /fault}
    plugins: [{name: fault-injection, config: {abort: {status: 503}}}]
  - id: rl
    upstream: b
    match: {path_prefix: /rl}
    plugins: [{name: rate-limit, config: {limit: 1, window: 1m}}]
  - id: ip
    upstream: b
    match: {path_prefix: /ip}
    plugins: [{name: ip-restriction, config: {deny: [127.0.0.0/8]}}]
`, map[string]string{"b": hostport(be), "auth": auth.URL})
			c := s.client()
			proto := "http"
			if m.tls {
				proto = "https"
			}
			do := func(method, path string, body io.Reader, h ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest(method, s.url(path), body)
				for i := 0; i < len(h); i += 2 {
					req.Header.Set(h[i], h[i+1])
				}
				if path == "/host/x" {
					req.Host = "site.test"
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 {
					t.Fatalf("%s %s: %s, want HTTP/2", method, path, resp.Proto)
				}
				return resp, string(b)
			}
			resp, b := do("GET", "/host/x", nil, "X-Drop", "1", "X-Forwarded-For", "192.0.2.9")
			var info echoInfo
			json.Unmarshal([]byte(b), &info)
			hd := func(n string) string { return strings.Join(info.Header[n], ",") }
			if resp.StatusCode != 200 || info.Host != "inner.test" || info.URI != "/x" || hd("X-Set") != "v" || hd("X-Drop") != "" ||
				hd("X-Forwarded-For") != "127.0.0.1" || hd("X-Forwarded-Host") != "site.test" || hd("X-Forwarded-Proto") != proto {
				t.Errorf("host route: %d, backend saw %s %s %v", resp.StatusCode, info.Host, info.URI, info.Header)
			}
			// SNI matches over h2 only (h2c has no TLS); method and header conditions.
			sni := "sni"
			if resp, _ = do("GET", "/sni", nil); !m.tls {
				sni = ""
				wantAnswer(t, resp, 404, "no_route")
			}
			do("PUT", "/m", nil, "X-Env", "blue")
			resp, _ = do("GET", "/m", nil, "X-Env", "blue")
			wantAnswer(t, resp, 404, "no_route")
			resp, _ = do("POST", "/small/y", io.NopCloser(strings.NewReader(strings.Repeat("x", 100))))
			wantAnswer(t, resp, 413, "request_body_too_large")
			resp, b = do("GET", "/gz/y", nil, "Accept-Encoding", "gzip")
			zr, err := gzip.NewReader(strings.NewReader(b))
			if err != nil || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Length") != "" {
				t.Errorf("compress: %v %v", resp.Header, err)
			} else if plain, err := io.ReadAll(zr); err != nil || !strings.Contains(string(plain), `"backend":"a"`) {
				t.Errorf("compress: %q %v", plain, err)
			}
			resp, b = do("GET", "/fa/ok?q=1", nil, "Authorization", "x")
			json.Unmarshal([]byte(b), &info)
			var seen http.Header
			if p := authSeen.Load(); p != nil {
				seen = *p
			}
			if resp.StatusCode != 200 || hd("X-User-Id") != "u1" || seen.Get("X-Forwarded-Proto") != proto ||
				seen.Get("X-Forwarded-Uri") != "/fa/ok?q=1" || seen.Get("X-Forwarded-Method") != "GET" || seen.Get("Authorization") != "x" {
				t.Errorf("forward-auth: %d, backend saw %v, auth service saw %v", resp.StatusCode, info.Header, seen)
			}
			resp, b = do("GET", "/fa/deny", nil)
			if resp.StatusCode != 401 || b != "nope" || resp.Header.Get("WWW-Authenticate") != "Basic" {
				t.Errorf("forward-auth denial: %d %q %v", resp.StatusCode, b, resp.Header)
			}
			resp, _ = do("GET", "/fault", nil)
			wantAnswer(t, resp, 503, "fault_injected_abort")
			do("GET", "/rl", nil)
			resp, _ = do("GET", "/rl", nil)
			wantAnswer(t, resp, 429, "rate_limited")
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("rate limit: no Retry-After: %v", resp.Header)
			}
			resp, _ = do("GET", "/ip", nil)
			wantAnswer(t, resp, 403, "ip_forbidden")

			sniReason := ""
			if !m.tls {
				sniReason = "no_route"
			}
			want := []struct{ route, reason string }{{"host", ""}, {sni, sniReason}, {"blue", ""}, {"", "no_route"},
				{"small", "request_body_too_large"}, {"gz", ""}, {"fa", ""}, {"fa", "auth_denied"}, {"fault", "fault_injected_abort"},
				{"rl", ""}, {"rl", "rate_limited"}, {"ip", "ip_forbidden"}}
			lines := s.accessLines(len(want))
			for i, l := range lines {
				r, _ := l["reason"].(string)
				rt, _ := l["route"].(string)
				if l["http_version"] != "HTTP/2" || rt != want[i].route || r != want[i].reason || l["request_id"] == "" {
					t.Errorf("access line %d (%v): http_version %v, route %q, reason %q; want HTTP/2, %q, %q",
						i, l["path"], l["http_version"], rt, r, want[i].route, want[i].reason)
				}
			}
		})
	}
}

// TestRetryStreamedBodyEndingAlone: a body without a declared length whose end comes on its
// own (an HTTP/2 END_STREAM in an empty DATA frame, as Go's and most HTTP/2 clients send
// it after a body of unknown length; an HTTP/1.1 last chunk sent apart) is held whole by
// the gateway once it ends, so an idempotent request whose first attempt the backend reset
// is sent again. Over HTTP/1.1 (chunked), h2 and h2c.
func TestRetryStreamedBodyEndingAlone(t *testing.T) {
	fb := testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		return testutil.Fault{Reset: n == 1} // the first attempt of each request is reset
	})
	rest := `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes:
  - id: all
    upstream: b
    retry: {attempts: 2}
`
	modes := []struct {
		name string
		tls  bool
		h1   bool
	}{{"http1", false, true}, {"h2", true, false}, {"h2c", false, false}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := startH2Config(t, m.tls, "", rest, map[string]string{"b": fb.Addr()})
			c := s.client()
			if m.h1 {
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				c = &http.Client{Transport: tr, Timeout: 10 * time.Second}
			}
			id := "alone-" + m.name
			pr, pw := io.Pipe()
			go func() {
				pw.Write([]byte("abc"))
				// The body ends only once the first attempt reached the backend: its
				// end comes alone, after the gateway sent the head and the bytes it had.
				for end := time.Now().Add(10 * time.Second); fb.Started(id) == 0 && time.Now().Before(end); {
					time.Sleep(time.Millisecond)
				}
				pw.Close()
			}()
			resp := sendWithID(t, c, "PUT", s.url("/put"), pr, id, false)
			if resp.StatusCode != 200 || resp.Header.Get("X-Got") != "3:ba7816bf8f01cfea" {
				t.Fatalf("%s %d %q X-Got %q, want 200 with the body re-sent whole", resp.Proto, resp.StatusCode,
					resp.Header.Get("X-Sluice-Error"), resp.Header.Get("X-Got"))
			}
			if got := fb.Started(id); got != 2 {
				t.Errorf("the backend started the request %d times, want 2", got)
			}
			if l := s.accessLines(1)[0]; l["attempts"] != float64(2) {
				t.Errorf("access log: %v, want 2 attempts", l)
			}
		})
	}
}

// TestH2InterimResponses: the interim responses of an HTTP/1.1 backend (103 Early Hints,
// 102 Processing) reach an HTTP/2 client as they reach an HTTP/1.1 one: each a HEADERS
// frame before the final head, with its fields but none that HTTP/2 forbids, and counted in
// the access log's interim_responses. Browsers act on Early Hints over HTTP/2 only. 100
// Continue stays the gateway's own business.
func TestH2InterimResponses(t *testing.T) {
	be := scriptBackend(t, nil, "HTTP/1.1 100 Continue\r\n\r\n"+
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n"+
		"HTTP/1.1 102 Processing\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	rest := `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2Config(t, m.tls, "", rest, map[string]string{"b": be})
			var got []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				got = append(got, strconv.Itoa(code)+" "+h.Get("Link")+" "+h.Get("X-Hop"))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.url("/x"), nil)
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := []string{"103 </a.css>; rel=preload ", "102  "}; resp.StatusCode != 200 || string(b) != "ok" || !slices.Equal(got, want) {
				t.Errorf("%d %q after interim responses %q; want 200 ok after %q", resp.StatusCode, b, got, want)
			}
			if l := s.accessLines(1)[0]; l["interim_responses"] != float64(2) {
				t.Errorf("access log: interim_responses %v, want 2", l["interim_responses"])
			}
			if m.tls {
				return
			}
			// The frames themselves: no field HTTP/2 forbids, nor a content-length, in the 103.
			fields, _ := rawH2Get(t, s.addr, "/x")
			var early []string
			for _, f := range fields {
				if f.Name == ":status" && f.Value == "102" {
					break
				}
				early = append(early, f.Name+": "+f.Value)
			}
			if want := []string{":status: 103", "link: </a.css>; rel=preload"}; !slices.Equal(early, want) {
				t.Errorf("the 103 frame's fields: %q, want %q", early, want)
			}
		})
	}
}

// TestRetryAfterAStoppedBodyRead: a client's body whose wait the gateway stopped for the
// upstream's failure (an HTTP/1.1 client paused mid-body; the backend reset the connection)
// cannot be read again, so the request is answered with the upstream's failure rather than
// re-sent into a read that fails at once (the client would get no answer at all).
func TestRetryAfterAStoppedBodyRead(t *testing.T) {
	fb := testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		return testutil.Fault{Reset: true}
	})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b, retry: {attempts: 2}}]
`, map[string]string{"b": fb.Addr()})
	for i := range 5 { // the reset may come before the wait too (then a re-send is right)
		id := "stopped-" + strconv.Itoa(i)
		// A chunked body of which 3 bytes come, then nothing until the answer.
		out := rawExchange(t, tg.addr, "PUT /put HTTP/1.1\r\nHost: h\r\nX-Request-Id: "+id+
			"\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 10*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 502 ") || !strings.Contains(out, "X-Sluice-Error: upstream_reset_before_response") {
			t.Fatalf("%s: got %q, want 502 upstream_reset_before_response", id, out)
		}
	}
}

// TestRetryStreamedBodyEndingAloneH2Upstream: as TestRetryStreamedBodyEndingAlone, on an
// HTTP/2 upstream (its own body reader, h2Body): the first attempt's stream is reset by the
// backend, and the body whose end came alone after the held bytes is sent again whole; one
// whose bytes past the held ones were sent is not sent again.
func TestRetryStreamedBodyEndingAloneH2Upstream(t *testing.T) {
	var mu sync.Mutex
	started := map[string]int{}
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		mu.Lock()
		started[id]++
		n := started[id]
		mu.Unlock()
		if n == 1 {
			if strings.HasSuffix(r.URL.Path, "/partial") {
				io.ReadFull(r.Body, make([]byte, 6)) // bytes past the gateway's held prefix
			}
			panic(http.ErrAbortHandler) // RST_STREAM: reset_before_response
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", string(b))
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	startedOnce := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return started[id] > 0
	}
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2Config(t, m.tls, "", `
upstreams: [{id: b, protocol: h2c, targets: [{address: {{b}}}]}]
routes:
  - {id: small, match: {path_prefix: /small}, upstream: b, retry: {attempts: 2, buffer_body: 4}}
  - {id: all, upstream: b, retry: {attempts: 2}}
`, map[string]string{"b": hostport(be)})
			id := "up-" + m.name
			pr, pw := io.Pipe()
			go func() {
				pw.Write([]byte("abc"))
				for end := time.Now().Add(10 * time.Second); !startedOnce(id) && time.Now().Before(end); {
					time.Sleep(time.Millisecond)
				}
				pw.Close()
			}()
			c := s.client()
			resp := sendWithID(t, c, "PUT", s.url("/put"), pr, id, false)
			if resp.StatusCode != 200 || resp.Header.Get("X-Got") != "abc" {
				t.Fatalf("%d %q X-Got %q, want 200 with the body re-sent whole", resp.StatusCode,
					resp.Header.Get("X-Sluice-Error"), resp.Header.Get("X-Got"))
			}
			if l := s.accessLines(1)[0]; l["attempts"] != float64(2) {
				t.Errorf("access log: %v, want 2 attempts", l)
			}

			// A body the attempt read past the held prefix: on an HTTP/2 upstream the attempt
			// holds what it reads while the whole fits retry.buffer_body (h2Body.hold), so it
			// is sent again whole; past buffer_body (4 bytes on /small) it is not sent again,
			// since a re-send would lose the bytes no longer held.
			partial := func(path, id string) *http.Response {
				pr, pw := io.Pipe()
				go func() {
					pw.Write([]byte("abc"))
					for end := time.Now().Add(10 * time.Second); !startedOnce(id) && time.Now().Before(end); {
						time.Sleep(time.Millisecond)
					}
					pw.Write([]byte("def"))
					pw.Close()
				}()
				return sendWithID(t, c, "PUT", s.url(path), pr, id, false)
			}
			resp = partial("/partial", "partial-"+m.name)
			if resp.StatusCode != 200 || resp.Header.Get("X-Got") != "abcdef" {
				t.Errorf("held body: %d %q X-Got %q, want 200 with the body re-sent whole", resp.StatusCode,
					resp.Header.Get("X-Sluice-Error"), resp.Header.Get("X-Got"))
			}
			resp = partial("/small/partial", "small-"+m.name)
			if resp.StatusCode != 502 || resp.Header.Get("X-Got") != "" {
				t.Errorf("partly sent body past buffer_body: %d X-Got %q, want 502 and no re-send", resp.StatusCode, resp.Header.Get("X-Got"))
			}
		})
	}
}
