package gateway

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/testutil"
)

// rawH2 is a client connection that writes HTTP/2 frames as a test wants them, abuse
// included.
type rawH2 struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialRawH2(t *testing.T, s *h2Site) *rawH2 {
	t.Helper()
	var c net.Conn
	var err error
	if s.tls {
		cfg := s.ca.ClientConfig("site.test")
		cfg.NextProtos = []string{"h2"}
		c, err = tls.Dial("tcp", s.addr, cfg)
	} else {
		c, err = net.Dial("tcp", s.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawH2{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.buf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// block encodes a request header block: GET path plus extra fields.
func (r *rawH2) block(method, path string, extra ...hpack.HeaderField) []byte {
	r.buf.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "site.test"}, {Name: ":path", Value: path}}, extra...) {
		r.enc.WriteField(f)
	}
	return bytes.Clone(r.buf.Bytes())
}

func (r *rawH2) headers(id uint32, endStream bool, block []byte) {
	r.t.Helper()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: endStream, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// h2Result is what a raw client read until the connection ended: the GOAWAY frames, the
// streams' statuses and resets.
type h2Result struct {
	goAways []*http2.GoAwayFrame
	status  map[uint32]string
	resets  map[uint32]http2.ErrCode
	ended   map[uint32]bool // END_STREAM seen
}

// readAll reads frames until the connection closes or d passes (answering PINGs is left
// to the test), collecting what came.
func (r *rawH2) readAll(d time.Duration) h2Result { return r.readUntil(d, nil) }

// readUntil is readAll that also stops once done says so.
func (r *rawH2) readUntil(d time.Duration, done func(h2Result) bool) h2Result {
	res := h2Result{status: map[uint32]string{}, resets: map[uint32]http2.ErrCode{}, ended: map[uint32]bool{}}
	r.c.SetReadDeadline(time.Now().Add(d))
	for {
		if done != nil && done(res) {
			return res
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			return res
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			res.goAways = append(res.goAways, f)
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" {
				res.status[f.StreamID] = st
			}
			if f.StreamEnded() {
				res.ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				res.ended[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			if _, seen := res.resets[f.StreamID]; !seen { // the first: later ones answer frames sent after it
				res.resets[f.StreamID] = f.ErrCode
			}
		}
	}
}

// lastGoAway is the code of the last GOAWAY read, or "none".
func (res h2Result) lastGoAway() string {
	if len(res.goAways) == 0 {
		return "none"
	}
	return res.goAways[len(res.goAways)-1].ErrCode.String()
}

// h2Counter waits until the gateway's counter name{labels} is want.
func h2Counter(t *testing.T, tg *testGateway, name string, labels map[string]string, want float64) {
	t.Helper()
	var got float64
	testutil.WaitFor(t, 3*time.Second, name, func() bool {
		got, _ = gathered(t, tg).value(name, labels)
		return got == want
	})
}

// TestH2Floods: each flood is cut at its limit: the client gets GOAWAY ENHANCE_YOUR_CALM,
// the connection closes, and sluice_http2_limit_hits_total counts it. A client just under
// each limit is served.
func TestH2Floods(t *testing.T) {
	be := hostport(echoBackend(t, "a"))
	cases := []struct {
		name  string
		limit string
		flood func(r *rawH2, n int)
	}{
		{"rapid reset", "rapid_reset", func(r *rawH2, n int) {
			for i := range n {
				id := uint32(2*i + 1)
				r.headers(id, true, r.block("GET", "/"))
				r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}},
		{"ping flood", "control_frame_flood", func(r *rawH2, n int) {
			for i := range n - 1 { // the client's first SETTINGS counts too
				r.fr.WritePing(false, [8]byte{byte(i)})
			}
		}},
		{"settings flood", "control_frame_flood", func(r *rawH2, n int) {
			for range n - 1 { // the client's first SETTINGS counts too
				r.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
			}
		}},
		{"empty data frames", "empty_frame_flood", func(r *rawH2, n int) {
			r.headers(1, false, r.block("POST", "/"))
			for range n {
				r.fr.WriteData(1, false, nil)
			}
		}},
		{"continuation flood", "continuation_flood", func(r *rawH2, n int) {
			b := r.block("GET", "/", hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("p", 64)})
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:1], EndStream: true})
			for i := 1; i < n; i++ {
				r.fr.WriteContinuation(1, false, b[i:i+1])
			}
			r.fr.WriteContinuation(1, true, b[n:])
		}},
	}
	const limit = 20
	s := startH2(t, false, be, "{max_resets_per_second: 20, max_control_frames_per_second: 20, max_empty_frames_per_second: 20, max_continuation_frames: 20}")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Under the limit: served, no GOAWAY.
			r := dialRawH2(t, s)
			tc.flood(r, limit)
			r.headers(101, true, r.block("GET", "/after"))
			res := r.readUntil(3*time.Second, func(res h2Result) bool { return res.ended[101] || len(res.goAways) > 0 })
			if res.status[101] != "200" || len(res.goAways) != 0 {
				t.Fatalf("under the limit: status %q, goaway %s", res.status[101], res.lastGoAway())
			}
			// Over it: GOAWAY ENHANCE_YOUR_CALM, and the request after it is not served.
			r = dialRawH2(t, s)
			tc.flood(r, limit+1)
			r.headers(101, true, r.block("GET", "/after"))
			res = r.readUntil(3*time.Second, func(res h2Result) bool { return len(res.goAways) > 0 })
			if got := res.lastGoAway(); got != "ENHANCE_YOUR_CALM" || res.status[101] != "" {
				t.Fatalf("over the limit: goaway %s, status of the next request %q", got, res.status[101])
			}
			want := 1.0
			if tc.limit == "control_frame_flood" && tc.name == "settings flood" {
				want = 2 // after the ping flood
			}
			h2Counter(t, s.testGateway, "sluice_http2_limit_hits_total", map[string]string{"listener": "edge", "limit": tc.limit}, want)
		})
	}
	h2Counter(t, s.testGateway, "sluice_http2_goaways_sent_total", map[string]string{"listener": "edge", "code": "ENHANCE_YOUR_CALM"}, float64(len(cases)))
}

// TestH2HeaderLimits: a header list above max_header_bytes is answered 431 with the reason
// and logged; an HPACK bomb (a few bytes that decode to far more) is answered 431 by the
// library and counted by the watch; the connection serves the next request either way.
func TestH2HeaderLimits(t *testing.T) {
	s := startH2(t, true, hostport(echoBackend(t, "a")), "")
	// Over max_header_bytes (64 KiB by default), under the library's bound: ours.
	c := s.client()
	req, _ := http.NewRequest("GET", s.url("/big"), nil)
	for i := range 8 {
		req.Header.Set("X-Big-"+string(rune('a'+i)), strings.Repeat("b", 9000))
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 || resp.Header.Get("X-Sluice-Error") != "request_header_too_large" {
		t.Fatalf("big header list: %d %q", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
	l := s.accessLines(1)[0]
	if l["reason"] != "request_header_too_large" || l["http_version"] != "HTTP/2" {
		t.Fatalf("access line %v", l)
	}

	// The bomb: one 4000-byte field put in the dynamic table, then indexed 200 times
	// (one byte each): about 800 KB decoded from 4 KB sent.
	r := dialRawH2(t, s)
	r.buf.Reset()
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "site.test"}, {Name: ":path", Value: "/bomb"}, {Name: "x-bomb", Value: strings.Repeat("x", 4000)}} {
		r.enc.WriteField(f)
	}
	for range 200 {
		r.buf.WriteByte(0x80 | 62) // indexed: the newest dynamic table entry
	}
	block := bytes.Clone(r.buf.Bytes())
	half := len(block) / 2
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:half], EndStream: true})
	r.fr.WriteContinuation(1, true, block[half:])
	r.headers(3, true, r.block("GET", "/after"))
	res := r.readAll(time.Second)
	if res.status[1] != "431" || res.status[3] != "200" || len(res.goAways) != 0 {
		t.Fatalf("bomb: status %q, next %q, goaway %s", res.status[1], res.status[3], res.lastGoAway())
	}
	h2Counter(t, s.testGateway, "sluice_http2_limit_hits_total", map[string]string{"listener": "edge", "limit": "header_list_too_large"}, 1)
}

// TestH2MaxConcurrentStreams: streams above max_concurrent_streams are refused (reset)
// and counted, while those under it are served.
func TestH2MaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	be := slowH2Backend(t, release)
	s := startH2(t, false, be, "{max_concurrent_streams: 2}")
	r := dialRawH2(t, s)
	r.readSettingsAndAck()
	for _, id := range []uint32{1, 3, 5} {
		r.headers(id, true, r.block("GET", "/slow"))
	}
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	res := r.readAll(2 * time.Second)
	if res.status[1] != "200" || res.status[3] != "200" || res.status[5] != "" {
		t.Fatalf("statuses %v, resets %v", res.status, res.resets)
	}
	if _, ok := res.resets[5]; !ok {
		t.Fatalf("stream 5 over the limit was not reset: %v", res.resets)
	}
	f := gathered(t, s.testGateway)
	mf := f["sluice_http2_protocol_errors_total"]
	found := false
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			found = found || lp.GetName() == "error" && strings.Contains(lp.GetValue(), "over_max_streams")
		}
	}
	if !found {
		t.Fatalf("over_max_streams not counted: %v", mf)
	}
}

// readSettingsAndAck reads the server's SETTINGS and acknowledges them.
func (r *rawH2) readSettingsAndAck() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			r.fr.WriteSettingsAck()
			return
		}
	}
}

// slowH2Backend answers every request after release is closed.
func slowH2Backend(t *testing.T, release <-chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte("slow\n"))
	}))
	t.Cleanup(srv.Close)
	return hostport(srv)
}

// TestH2FlowControl: a client that sends more than the stream's window (while the upstream
// does not read) breaks flow control: the stream or connection ends with FLOW_CONTROL_ERROR
// and the library's error is counted.
func TestH2FlowControl(t *testing.T) {
	be := serveConns(t, func(c net.Conn) { time.Sleep(5 * time.Second) }) // never reads
	s := startH2(t, false, be, "{stream_window_bytes: 65535, conn_window_bytes: 1048576}")
	r := dialRawH2(t, s)
	r.readSettingsAndAck()
	r.headers(1, false, r.block("POST", "/upload"))
	chunk := make([]byte, 16384)
	for range 300 { // ~4.9 MB, far past the 64 KiB window and what the sockets buffer
		if err := r.fr.WriteData(1, false, chunk); err != nil {
			break
		}
	}
	res := r.readAll(3 * time.Second)
	code, reset := res.resets[1]
	if !(reset && code == http2.ErrCodeFlowControl) && res.lastGoAway() != "FLOW_CONTROL_ERROR" {
		t.Fatalf("no flow-control error: resets %v, goaway %s", res.resets, res.lastGoAway())
	}
	f := gathered(t, s.testGateway)
	found := false
	for _, m := range f["sluice_http2_protocol_errors_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			found = found || lp.GetName() == "error" && strings.Contains(lp.GetValue(), "FLOW_CONTROL")
		}
	}
	if !found {
		t.Fatal("flow-control error not counted")
	}
}
