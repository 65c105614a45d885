package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// The compress plugin through the gateway: round trips over HTTP/1.1 and HTTP/2 (h2c)
// checked by the reference decoders and by curl and the brotli/zstd/gzip tools, the
// responses it must never compress, event streams and trickling bodies arriving piece by
// piece, and bad configs.

const compressConfig = `
listeners: [{address: 127.0.0.1:0, protocols: [http1, h2c]}]
upstreams: [{id: be, targets: [{address: {{b}}}]}]
routes:
  - id: c
    upstream: be
    plugins:
      - name: compress
        config: {min_size: 512{{extra}}}
admin: {address: 127.0.0.1:0}
`

// compressBody is a compressible JSON body of n bytes.
func compressBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["alpha","beta"]},`+"\n", i, i*7)
	}
	return b.Bytes()[:n]
}

// preGzipped is what /encoded sends: a body the upstream compressed itself.
func preGzipped(body []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(body)
	zw.Close()
	return b.Bytes()
}

// compressBackend serves the cases by path; big is the large body.
func compressBackend(t *testing.T, big []byte) *httptest.Server {
	small := big[:100]
	encoded := preGzipped(big)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		body := big
		switch r.URL.Path {
		case "/cl":
			h.Set("ETag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
		case "/chunked":
			for i := 0; i < len(big); i += 7000 {
				w.Write(big[i:min(i+7000, len(big))])
				w.(http.Flusher).Flush()
			}
			return
		case "/small":
			body = small
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/encoded":
			h.Set("Content-Encoding", "gzip")
			body = encoded
		case "/range":
			h.Set("Content-Range", fmt.Sprintf("bytes 0-999/%d", len(big)))
			h.Set("Content-Length", "1000")
			w.WriteHeader(206)
			w.Write(big[:1000])
			return
		case "/notransform":
			h.Set("Cache-Control", "public, no-transform")
		case "/sse":
			h.Set("Content-Type", "text/event-stream")
		case "/accel":
			h.Set("X-Accel-Buffering", "no")
		case "/204":
			w.WriteHeader(204)
			return
		case "/304":
			h.Set("ETag", `"v1"`)
			w.WriteHeader(304)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != "HEAD" {
			w.Write(body)
		}
	}))
	t.Cleanup(be.Close)
	return be
}

// compressSite starts the gateway in front of backend with extra plugin config ("" or
// ", key: value").
func compressSite(t *testing.T, backend, extra string) *h2Site {
	cfg := strings.Replace(compressConfig, "{{extra}}", extra, 1)
	return &h2Site{testGateway: startGateway(t, cfg, map[string]string{"b": backend})}
}

// compressClients are an HTTP/1.1 and an HTTP/2 (h2c) client that neither add
// Accept-Encoding nor decode: the tests see the bytes the gateway sent.
func compressClients(s *h2Site) map[string]*http.Client {
	h2 := s.transport()
	h2.DisableCompression = true
	s.t.Cleanup(h2.CloseIdleConnections)
	h1 := &http.Transport{DisableCompression: true}
	s.t.Cleanup(h1.CloseIdleConnections)
	return map[string]*http.Client{
		"http1": {Transport: h1, Timeout: 10 * time.Second},
		"h2c":   {Transport: h2, Timeout: 10 * time.Second},
	}
}

// get sends method path with header fields (name, value pairs) and reads the whole body.
func compressGet(t *testing.T, c *http.Client, method, url string, h ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, b
}

// decode decodes b from Content-Encoding enc with the reference decoders.
func decode(t *testing.T, enc string, r io.Reader) io.Reader {
	t.Helper()
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("unknown encoding %q", enc)
	return nil
}

// TestCompressRoundTrip: each coding, over HTTP/1.1 and HTTP/2, for a Content-Length and a
// chunked body: the head says what was done (Content-Encoding, Vary, no length, a weak
// ETag, no Accept-Ranges), the body decodes to the upstream's, and the metrics count the
// bytes in and out.
func TestCompressRoundTrip(t *testing.T) {
	big := compressBody(300 << 10)
	s := compressSite(t, hostport(compressBackend(t, big)), "")
	out := map[string]int{}
	for proto, c := range compressClients(s) {
		for _, enc := range []string{"gzip", "br", "zstd"} {
			for _, path := range []string{"/cl", "/chunked"} {
				t.Run(proto+"/"+enc+path, func(t *testing.T) {
					resp, raw := compressGet(t, c, "GET", s.url(path), "Accept-Encoding", enc+", identity;q=0.5")
					h := resp.Header
					if resp.StatusCode != 200 || h.Get("Content-Encoding") != enc || resp.ContentLength != -1 ||
						!strings.Contains(h.Get("Vary"), "Accept-Encoding") || h.Get("Accept-Ranges") != "" {
						t.Fatalf("%s: status %d, Content-Encoding %q, length %d, Vary %q, Accept-Ranges %q; want 200, %s, -1, Accept-Encoding, none",
							resp.Proto, resp.StatusCode, h.Get("Content-Encoding"), resp.ContentLength, h.Get("Vary"), h.Get("Accept-Ranges"), enc)
					}
					if path == "/cl" && h.Get("ETag") != `W/"v1"` {
						t.Errorf("ETag %q, want W/\"v1\"", h.Get("ETag"))
					}
					body, err := io.ReadAll(decode(t, enc, bytes.NewReader(raw)))
					if err != nil || !bytes.Equal(body, big) {
						t.Fatalf("decoded %d bytes (%v), want the upstream's %d", len(body), err, len(big))
					}
					if len(raw) > len(big)/4 {
						t.Errorf("%d bytes compressed to %d: not compressed", len(big), len(raw))
					}
					out[enc] += len(raw)
				})
			}
		}
	}
	f, _ := scrape(t, s.adminURL("/metrics"))
	for _, enc := range []string{"gzip", "br", "zstd"} {
		lbl := map[string]string{"encoding": enc, "place": "c"}
		n, _ := f.value("sluice_compress_responses_total", lbl)
		in, _ := f.value("sluice_compress_in_bytes_total", lbl)
		o, _ := f.value("sluice_compress_out_bytes_total", lbl)
		if n != 4 || in != float64(4*len(big)) || o != float64(out[enc]) {
			t.Errorf("%s: responses %v, in %v, out %v; want 4, %d, %d", enc, n, in, o, 4*len(big), out[enc])
		}
	}
}

// TestCompressNever: the responses that must pass as the upstream sent them, whatever the
// client accepts: refused or missing codings, other types, small bodies, already encoded
// bodies, ranges, no-transform, event streams and X-Accel-Buffering: no, HEAD, 204, 304.
// Each is counted under its reason; Vary is added only when the response was eligible.
func TestCompressNever(t *testing.T) {
	big := compressBody(8 << 10)
	s := compressSite(t, hostport(compressBackend(t, big)), "")
	all := "gzip, br, zstd"
	cases := []struct {
		name, method, path, accept string
		status                     int
		body                       []byte // nil: no body
		vary                       bool
		reason                     string // "" for no body phase
	}{
		{"no Accept-Encoding", "GET", "/cl", "", 200, big, true, "not_accepted"},
		{"all refused", "GET", "/cl", "gzip;q=0, br;q=0, zstd;q=0, *;q=0", 200, big, true, "not_accepted"},
		{"identity preferred", "GET", "/cl", "gzip;q=0.5, identity", 200, big, true, "not_accepted"},
		{"unknown codings", "GET", "/cl", "deflate, compress", 200, big, true, "not_accepted"},
		{"other type", "GET", "/png", all, 200, big, false, "type"},
		{"below min_size", "GET", "/small", all, 200, big[:100], false, "too_small"},
		{"already encoded", "GET", "/encoded", all, 200, preGzipped(big), false, "encoded"},
		{"range", "GET", "/range", all, 206, big[:1000], false, "partial"},
		{"no-transform", "GET", "/notransform", all, 200, big, false, "no_transform"},
		{"event stream", "GET", "/sse", all, 200, big, false, "streaming"},
		{"X-Accel-Buffering: no", "GET", "/accel", all, 200, big, false, "streaming"},
		{"HEAD", "HEAD", "/cl", all, 200, nil, false, ""},
		{"204", "GET", "/204", all, 204, nil, false, ""},
		{"304", "GET", "/304", all, 304, nil, false, ""},
	}
	want := map[string]float64{}
	for proto, c := range compressClients(s) {
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				h := []string{}
				if tc.accept != "" {
					h = []string{"Accept-Encoding", tc.accept}
				}
				if tc.path == "/range" {
					h = append(h, "Range", "bytes=0-999")
				}
				resp, raw := compressGet(t, c, tc.method, s.url(tc.path), h...)
				ce := resp.Header.Get("Content-Encoding")
				if tc.path == "/encoded" {
					ce = strings.TrimPrefix(ce, "gzip") // the upstream's own
				}
				if resp.StatusCode != tc.status || ce != "" || !bytes.Equal(raw, tc.body) {
					t.Errorf("status %d, Content-Encoding %q, %d body bytes; want %d, the upstream's %d bytes as sent",
						resp.StatusCode, resp.Header.Get("Content-Encoding"), len(raw), tc.status, len(tc.body))
				}
				if got := strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding"); got != tc.vary {
					t.Errorf("Vary %q: Accept-Encoding listed %v, want %v", resp.Header.Get("Vary"), got, tc.vary)
				}
				if tc.method == "HEAD" && resp.ContentLength != int64(len(big)) {
					t.Errorf("HEAD: length %d, want the upstream's %d", resp.ContentLength, len(big))
				}
			})
			if tc.reason != "" {
				want[tc.reason]++
			}
		}
	}
	f, _ := scrape(t, s.adminURL("/metrics"))
	for reason, n := range want {
		if got, _ := f.value("sluice_compress_skipped_total", map[string]string{"reason": reason, "place": "c"}); got != n {
			t.Errorf("sluice_compress_skipped_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	for _, enc := range []string{"gzip", "br", "zstd"} {
		if got, _ := f.value("sluice_compress_responses_total", map[string]string{"encoding": enc}); got != 0 {
			t.Errorf("%s responses %v, want 0", enc, got)
		}
	}
}

// trickleBackend writes lines of type ct, flushing each and waiting for next before the
// following one: a test proves each arrived before the next was written.
func trickleBackend(t *testing.T, ct string, lines []string, next chan struct{}) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		for _, l := range lines {
			io.WriteString(w, l)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(5 * time.Second):
				return // the client never saw the line: the test fails
			}
		}
	}))
	t.Cleanup(be.Close)
	return be
}

// readPieces reads lines from r one by one, each within 2 s, then releases the backend's
// next one.
func readPieces(t *testing.T, r io.Reader, lines []string, next chan struct{}) {
	t.Helper()
	br := bufio.NewReader(r)
	for i, want := range lines {
		start := time.Now()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
			t.Fatalf("piece %d: %q (%v), want %q", i, got, err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("piece %d took %v: it waited for the next one", i, d)
		}
		next <- struct{}{}
	}
}

// TestCompressSSEArrivesEventByEvent: an event stream through compress, even with
// types: ["*"] and every coding accepted, is not compressed and reaches the client event
// by event, over HTTP/1.1 and HTTP/2 (traefik/traefik#11509 buffered it).
func TestCompressSSEArrivesEventByEvent(t *testing.T) {
	events := []string{"event: a\ndata: 1\n\n", "data: " + strings.Repeat("x", 2000) + "\n\n", "data: 3\n\n"}
	next := make(chan struct{})
	be := trickleBackend(t, "text/event-stream; charset=utf-8", events, next)
	s := compressSite(t, hostport(be), `, types: ["*"]`)
	for proto, c := range compressClients(s) {
		t.Run(proto, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.url("/events"), nil)
			req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Fatalf("event stream sent with Content-Encoding %q", ce)
			}
			readPieces(t, resp.Body, events, next)
		})
	}
}

// TestCompressTrickleArrivesPieceByPiece: a compressed body that trickles (NDJSON lines
// with pauses) decodes piece by piece on the client, in every coding, over HTTP/1.1 and
// HTTP/2: the encoder is flushed after each upstream read, not held until the end.
func TestCompressTrickleArrivesPieceByPiece(t *testing.T) {
	lines := []string{`{"n":1,"pad":"` + strings.Repeat("a", 600) + `"}` + "\n", `{"n":2}` + "\n", `{"n":3}` + "\n"}
	next := make(chan struct{})
	s := compressSite(t, hostport(trickleBackend(t, "application/x-ndjson", lines, next)), "")
	for proto, c := range compressClients(s) {
		for _, enc := range []string{"gzip", "br", "zstd"} {
			t.Run(proto+"/"+enc, func(t *testing.T) {
				req, _ := http.NewRequest("GET", s.url("/stream"), nil)
				req.Header.Set("Accept-Encoding", enc)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if ce := resp.Header.Get("Content-Encoding"); ce != enc {
					t.Fatalf("Content-Encoding %q, want %s", ce, enc)
				}
				readPieces(t, decode(t, enc, resp.Body), lines, next)
			})
		}
	}
}

// TestCompressExternalDecoders: curl --compressed decodes each coding, and the gzip,
// brotli and zstd command-line tools decode the bytes the gateway sent.
func TestCompressExternalDecoders(t *testing.T) {
	tools := map[string]string{"gzip": requireExternal(t, "gzip"), "br": requireExternal(t, "brotli"), "zstd": requireExternal(t, "zstd")}
	curl := requireExternal(t, "curl")
	big := compressBody(200 << 10)
	s := compressSite(t, hostport(compressBackend(t, big)), "")
	c := compressClients(s)["http1"]
	for _, enc := range []string{"gzip", "br", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			for _, path := range []string{"/cl", "/chunked"} {
				out, err := exec.Command(curl, "-sS", "--max-time", "10", "--compressed", "-H", "Accept-Encoding: "+enc,
					"-D", "-", s.url(path)).Output()
				head, body, _ := bytes.Cut(out, []byte("\r\n\r\n"))
				if err != nil || !bytes.Contains(bytes.ToLower(head), []byte("content-encoding: "+enc)) || !bytes.Equal(body, big) {
					t.Errorf("curl --compressed %s: err %v, head %q, %d body bytes; want %s and the upstream's %d bytes", path, err, head, len(body), enc, len(big))
				}
				_, raw := compressGet(t, c, "GET", s.url(path), "Accept-Encoding", enc)
				cmd := exec.Command(tools[enc], "-d", "-c")
				cmd.Stdin = bytes.NewReader(raw)
				dec, err := cmd.Output()
				if err != nil || !bytes.Equal(dec, big) {
					t.Errorf("%s -d %s: %d bytes (%v), want the upstream's %d", tools[enc], path, len(dec), err, len(big))
				}
			}
		})
	}
}

// TestCompressConfigErrors: bad settings are config errors naming the field; every problem
// is listed.
func TestCompressConfigErrors(t *testing.T) {
	cases := []struct {
		name, config string
		want         []string
	}{
		{"unknown encoding and duplicate", `{encodings: [gzip, deflate, gzip]}`,
			[]string{`config.encodings[1]: route "api": plugin compress: "deflate" is not one of gzip, br, zstd`, `encodings[2]: route "api": plugin compress: "gzip" is listed twice`}},
		{"empty lists", `{encodings: [], types: []}`, []string{"config.encodings", "list at least one of gzip, br, zstd", "config.types", "list at least one media type"}},
		{"levels out of range", `{levels: {gzip: 0, br: 12, zstd: 23}}`,
			[]string{"levels.gzip: route \"api\": plugin compress: 0 is out of range 1 to 9", "levels.br", "12 is out of range 0 to 11", "levels.zstd", "23 is out of range 1 to 22"}},
		{"bad types", `{types: [text, "*/json", "text/html; q=1"]}`, []string{"types[0]", `"text" is not a media type`, "types[1]", "types[2]"}},
		{"negative min_size", `{min_size: -1}`, []string{"min_size", "-1 is negative"}},
		{"unknown field", `{level: 5}`, []string{`config.level: route "api": plugin compress: unknown field "level"`}},
		{"x-gzip is not a config name", `{encodings: [x-gzip]}`, []string{`"x-gzip" is not one of`}},
		{"good", `{encodings: [gzip], levels: {gzip: 9}, types: ["application/*+json", "*"], min_size: 0}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPlugins(t, `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: compress
        config: `+tc.config+"\n", tc.want)
		})
	}
}

// TestCompressH2Upstream: the HTTP/2 upstream relay runs the body phase too, and the
// upstream's Content-Length is visible to min_size there as well.
func TestCompressH2Upstream(t *testing.T) {
	big := compressBody(64 << 10)
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		body := big
		if r.URL.Path == "/small" {
			body = big[:100]
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	cfg := strings.Replace(strings.Replace(compressConfig, "{{extra}}", "", 1),
		"upstreams: [{id: be, targets:", "upstreams: [{id: be, protocol: h2c, targets:", 1)
	s := &h2Site{testGateway: startGateway(t, cfg, map[string]string{"b": hostport(be)})}
	c := compressClients(s)["http1"]
	resp, raw := compressGet(t, c, "GET", s.url("/big"), "Accept-Encoding", "zstd")
	body, err := io.ReadAll(decode(t, "zstd", bytes.NewReader(raw)))
	if resp.Header.Get("Content-Encoding") != "zstd" || err != nil || !bytes.Equal(body, big) {
		t.Errorf("big: Content-Encoding %q, decoded %d bytes (%v); want zstd and the upstream's %d", resp.Header.Get("Content-Encoding"), len(body), err, len(big))
	}
	resp, raw = compressGet(t, c, "GET", s.url("/small"), "Accept-Encoding", "zstd")
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(raw, big[:100]) || resp.ContentLength != 100 {
		t.Errorf("small: Content-Encoding %q, %d bytes, length %d; want it as sent (below min_size)", resp.Header.Get("Content-Encoding"), len(raw), resp.ContentLength)
	}
}
