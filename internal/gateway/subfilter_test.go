package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The response body phase (plugin.ResponseBodyFilter) through the gateway, with sub-filter:
// matches that straddle upstream reads, re-framing of Content-Length bodies for HTTP/1.1
// and HTTP/1.0 clients, a large body, an SSE stream event by event, and splicing kept for
// responses no body filter touches.

const subFilterConfig = `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: be, targets: [{address: {{b}}}]}]
routes:
  - id: filtered
    match: {path_prefix: /f/}
    upstream: be
    plugins:
      - name: sub-filter
        config:
          replace:
            - {from: "http://internal.example", to: "https://api.example.com"}
            - {from: "secret", to: ""}
          types: [text/html, text/event-stream]
  - id: plain
    match: {path_prefix: /p/}
    upstream: be
admin: {address: 127.0.0.1:0}
`

// TestSubFilterMatchStraddlesReads: the backend writes the body in flushed pieces, split
// inside both search strings and one byte at a time across one; every match is replaced.
func TestSubFilterMatchStraddlesReads(t *testing.T) {
	pieces := []string{"<a href=\"http://inter", "nal.example/x\">sec", "ret</a> h", "t", "t", "p", ":", "/", "/internal.exa", "mple/y http://internal.ex"}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		for _, p := range pieces {
			io.WriteString(w, p)
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond) // each piece is its own upstream read
		}
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, subFilterConfig, map[string]string{"b": hostport(be)})
	resp, body, err := fetch(t, newClient(), tg.url("/f/page"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %v err %v", resp, err)
	}
	want := `<a href="https://api.example.com/x"></a> https://api.example.com/y http://internal.ex`
	if string(body) != want {
		t.Errorf("body\n got %q\nwant %q", body, want)
	}
	if got := resp.Header.Get("ETag"); got != `W/"v1"` {
		t.Errorf("ETag %q, want the weak W/\"v1\"", got)
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	if n, _ := f.value("sluice_sub_filter_total", map[string]string{"event": "replacement", "place": "filtered"}); n != 3 {
		t.Errorf("sluice_sub_filter_total{event=replacement} = %v, want 3", n)
	}
}

// subFilterRaw sends req on a new connection and returns everything the gateway sent until
// it closed the connection or went quiet for a second.
func subFilterRaw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestSubFilterReframesContentLength: a Content-Length body whose length changes goes out
// chunked to an HTTP/1.1 client and close-delimited to an HTTP/1.0 one; HEAD keeps the
// upstream's Content-Length (no body phase).
func TestSubFilterReframesContentLength(t *testing.T) {
	const in = "go to http://internal.example/docs now, secret"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(in)))
		if r.Method != "HEAD" {
			io.WriteString(w, in)
		}
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, subFilterConfig, map[string]string{"b": hostport(be)})
	const out = "go to https://api.example.com/docs now, "

	r11, err := http.ReadResponse(bufio.NewReader(strings.NewReader(subFilterRaw(t, tg.addr,
		"GET /f/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	b11, err := io.ReadAll(r11.Body)
	if err != nil || string(b11) != out || r11.ContentLength != -1 || len(r11.TransferEncoding) != 1 || r11.TransferEncoding[0] != "chunked" {
		t.Errorf("HTTP/1.1: body %q err %v length %d transfer-encoding %v; want %q chunked", b11, err, r11.ContentLength, r11.TransferEncoding, out)
	}

	raw10 := subFilterRaw(t, tg.addr, "GET /f/a HTTP/1.0\r\nHost: x\r\n\r\n")
	head, body, _ := strings.Cut(raw10, "\r\n\r\n")
	lh := strings.ToLower(head)
	if body != out || strings.Contains(lh, "content-length") || strings.Contains(lh, "transfer-encoding") || !strings.Contains(lh, "connection: close") {
		t.Errorf("HTTP/1.0: head %q body %q; want no length, no chunking, Connection: close and %q", head, body, out)
	}

	rh := subFilterRaw(t, tg.addr, "HEAD /f/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.Contains(rh, "Content-Length: "+strconv.Itoa(len(in))+"\r\n") || strings.Contains(rh, "chunked") {
		t.Errorf("HEAD: %q; want the upstream's Content-Length, no chunking", rh)
	}
}

// TestSubFilterLargeBodyAndSplicing: a 6 MiB Content-Length body through the filter equals
// strings.ReplaceAll's result and is not spliced; the same body on a route without body
// filters, and on the filtered route with a type the filter does not take, is spliced.
func TestSubFilterLargeBodyAndSplicing(t *testing.T) {
	var sb strings.Builder
	for i := 0; sb.Len() < 6<<20; i++ {
		sb.WriteString("line ")
		sb.WriteString(strconv.Itoa(i))
		sb.WriteString(" http://internal.example/item/ and some padding text here\n")
	}
	in := sb.String()
	want := strings.ReplaceAll(in, "http://internal.example", "https://api.example.com")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := "text/html"
		if strings.HasSuffix(r.URL.Path, ".bin") {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(in)))
		io.WriteString(w, in)
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, subFilterConfig, map[string]string{"b": hostport(be)})
	spliced := func() float64 {
		f, _ := scrape(t, tg.adminURL("/metrics"))
		v, _ := f.value("sluice_spliced_bytes_total", map[string]string{"direction": "response"})
		return v
	}
	c := newClient()
	resp, body, err := fetch(t, c, tg.url("/f/big"))
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, []byte(want)) {
		t.Fatalf("filtered: status %v, %d bytes (want %d), err %v", resp.StatusCode, len(body), len(want), err)
	}
	if s := spliced(); s != 0 {
		t.Errorf("filtered body: %.0f bytes spliced, want 0", s)
	}
	for _, path := range []string{"/p/big", "/f/big.bin"} {
		before := spliced()
		resp, body, err = fetch(t, c, tg.url(path))
		if err != nil || resp.StatusCode != 200 || string(body) != in || resp.ContentLength != int64(len(in)) {
			t.Fatalf("%s: status %v, %d bytes, length %d, err %v; want the body as sent", path, resp.StatusCode, len(body), resp.ContentLength, err)
		}
		if s := spliced() - before; s < float64(len(in)-64<<10) {
			t.Errorf("%s: %.0f bytes spliced, want nearly all %d: no body filter touched it", path, s, len(in))
		}
	}
}

// TestSubFilterSSEArrivesEventByEvent: with the filter on an event stream, each event
// reaches the client (rewritten) before the backend writes the next one.
func TestSubFilterSSEArrivesEventByEvent(t *testing.T) {
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			io.WriteString(w, "data: "+strconv.Itoa(i)+" http://internal.example\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(5 * time.Second):
				return // the client never saw the event: the test fails below
			}
		}
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, subFilterConfig, map[string]string{"b": hostport(be)})
	resp, err := newClient().Get(tg.url("/f/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		start := time.Now()
		line, err := br.ReadString('\n')
		br.ReadString('\n') // the blank line ending the event
		if want := "data: " + strconv.Itoa(i) + " https://api.example.com\n"; err != nil || line != want {
			t.Fatalf("event %d: %q err %v, want %q", i, line, err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("event %d took %v: it waited for the next one", i, d)
		}
		next <- struct{}{}
	}
}

// TestSubFilterChainedBodyFilters: three body filters on one route run in config order,
// each one's output the next one's input (the middle one reads and writes scratch buffers).
func TestSubFilterChainedBodyFilters(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("xa", 5000))
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: be, targets: [{address: {{b}}}]}]
routes:
  - id: chained
    upstream: be
    plugins:
      - {name: sub-filter, config: {replace: [{from: a, to: bb}], types: [text/*]}}
      - {name: sub-filter, config: {replace: [{from: bb, to: ccc}], types: [text/*]}}
      - {name: sub-filter, config: {replace: [{from: ccc, to: d}], types: [text/*]}}
`, map[string]string{"b": hostport(be)})
	_, body, err := fetch(t, newClient(), tg.url("/"))
	if want := strings.Repeat("xd", 5000); err != nil || string(body) != want {
		t.Errorf("body %d bytes %.40q..., err %v; want %d bytes of \"xd\"", len(body), body, err, len(want))
	}
}

// TestSubFilterH2Client: an HTTP/2 (h2c) client gets a rewritten Content-Length body
// without a length, whole.
func TestSubFilterH2Client(t *testing.T) {
	const in = "see http://internal.example/a and http://internal.example/b"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(in)))
		io.WriteString(w, in)
	}))
	t.Cleanup(be.Close)
	s := &h2Site{}
	s.testGateway = startGateway(t, strings.Replace(subFilterConfig, "listeners: [{address: 127.0.0.1:0}]",
		"listeners: [{address: 127.0.0.1:0, protocols: [http1, h2c]}]", 1), map[string]string{"b": hostport(be)})
	resp, err := s.client().Get(s.url("/f/x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	want := "see https://api.example.com/a and https://api.example.com/b"
	if resp.ProtoMajor != 2 || err != nil || string(body) != want || resp.ContentLength != -1 {
		t.Errorf("%s: body %q err %v length %d; want HTTP/2, %q, no length", resp.Proto, body, err, resp.ContentLength, want)
	}
}

// BenchmarkSubFilterBody fetches a 4 MiB text/html body on a route with sub-filter
// (rewritten: copied through the filter) and without (spliced), alternating, on ports
// 28100-28101 (SLUICE_BENCH_PORT_BASE is not used: the bodyphase helper's range).
func BenchmarkSubFilterBody(b *testing.B) {
	var sb strings.Builder
	for sb.Len() < 4<<20 {
		sb.WriteString("<p>see http://internal.example/item and some padding text here</p>\n")
	}
	in := sb.String()
	ln, err := net.Listen("tcp", "127.0.0.1:28101")
	if err != nil {
		b.Skip(err)
	}
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(in)))
		io.WriteString(w, in)
	}))
	be.Listener.Close()
	be.Listener = ln
	be.Start()
	b.Cleanup(be.Close)
	yaml := strings.Replace(subFilterConfig, "127.0.0.1:0}]", "127.0.0.1:28100}]", 1)
	yaml = strings.Replace(yaml, "admin: {address: 127.0.0.1:0}\n", "", 1)
	addr := benchGateway(b, strings.Replace(yaml, "{{b}}", hostport(be), 1), false)
	c := newClient()
	for _, path := range []string{"/p/x", "/f/x"} {
		b.Run(path[1:2], func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				resp, err := c.Get("http://" + addr + path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// TestSubFilterH2Upstream: the body phase runs on the HTTP/2 upstream relay too (an h2c
// backend whose response straddles a match across flushed DATA frames).
func TestSubFilterH2Upstream(t *testing.T) {
	pieces := []string{"see http://inter", "nal.example/a and sec", "ret http://internal.example/b"}
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		for _, p := range pieces {
			io.WriteString(w, p)
			w.(http.Flusher).Flush()
		}
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	cfg := strings.Replace(subFilterConfig, "upstreams: [{id: be, targets: [{address: {{b}}}]}]",
		"upstreams: [{id: be, protocol: h2c, targets: [{address: {{b}}}]}]", 1)
	tg := startGateway(t, cfg, map[string]string{"b": hostport(be)})
	resp, err := newClient().Get(tg.url("/f/x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	want := "see https://api.example.com/a and  https://api.example.com/b"
	if err != nil || string(body) != want {
		t.Errorf("body %q (%v), want %q", body, err, want)
	}
}
