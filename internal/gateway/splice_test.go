package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// The rest of a large Content-Length response body goes socket to socket (splice): these
// tests pin that it arrives intact, that the upstream connection is reused after it, that the
// metric and the access log count it, and that each failure mid-body (upstream pause, upstream
// reset, a client that stops reading) ends it the way the copy loop does.

// TestSplicedBodyArrivesIntactAndTheConnectionIsReused fetches a 3 MiB random body three
// times over one client connection.
func TestSplicedBodyArrivesIntactAndTheConnectionIsReused(t *testing.T) {
	data := randomBytes(3<<20 + 17)
	sum := sha256.Sum256(data)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: big, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: big}]
admin: {address: 127.0.0.1:0}
`, map[string]string{"b": hostport(be)})
	c := newClient()
	for i := range 3 {
		resp, body, err := fetch(t, c, tg.url("/"))
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(body) != sum {
			t.Fatalf("request %d: %d, %d bytes, err %v: want 200 and the %d bytes sent", i, resp.StatusCode, len(body), err, len(data))
		}
	}
	lines := tg.accessLines(3)
	for _, l := range lines {
		if l["bytes_out"] != float64(len(data)) || l["status"] != float64(200) {
			t.Errorf("access log: bytes_out %v status %v, want %d 200", l["bytes_out"], l["status"], len(data))
		}
	}
	u := tg.gw.Current().Upstreams["big"]
	if s := u.Current().Targets[0].Pool.Snapshot(); s.Counters.Opened != 1 || s.Counters.Reused != 2 {
		t.Errorf("pool counters %+v: want 1 connection reused twice after spliced bodies", s.Counters)
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	got, _ := f.value("sluice_spliced_bytes_total", map[string]string{"direction": "response"})
	// All but what arrived with the head (at most the 4 KiB read buffer) per response.
	if min := float64(3 * (len(data) - 4096)); got < min || got > float64(3*len(data)) {
		t.Errorf("sluice_spliced_bytes_total{direction=response} = %.0f, want between %.0f and %d", got, min, 3*len(data))
	}
}

func TestSplicedBodyUpstreamPauseBeyondTheReadTimeout(t *testing.T) {
	part := strings.Repeat("x", 256<<10)
	be := scriptBackend(t, []time.Duration{0, 0, 3 * time.Second},
		"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n", part, strings.Repeat("y", 1<<20-len(part)))
	tg := upstreamGateway(t, be, "timeouts: {read: 1s}")
	start := time.Now()
	_, body, err := fetch(t, newClient(), tg.url("/"))
	if err == nil || len(body) != len(part) {
		t.Fatalf("got %d bytes, err %v; want the 256 KiB sent, then a truncated body", len(body), err)
	}
	// Not before the read timeout; the truncated body and the reason below show that the
	// timeout, not the backend's 3 s pause ending, cut it. No tight upper bound: on a loaded
	// machine the deadline's goroutine can run seconds late (a CI run saw 6.3 s).
	if d := time.Since(start); d < 900*time.Millisecond || d > 30*time.Second {
		t.Errorf("the body failed after %v, want the 1s read timeout", d)
	}
	if l := tg.accessLines(1)[0]; l["reason"] != "upstream_timeout" || l["bytes_out"] != float64(len(part)) {
		t.Errorf("access log reason %v bytes_out %v, want upstream_timeout %d", l["reason"], l["bytes_out"], len(part))
	}
}

func TestSplicedBodyUpstreamResetMidBody(t *testing.T) {
	relayed := make(chan struct{}) // the client has the head: the body is being relayed
	be := serveConns(t, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
		c.Write(make([]byte, 200<<10))
		select {
		case <-relayed:
		case <-time.After(5 * time.Second):
		}
		c.(*net.TCPConn).SetLinger(0) // the close resets
	})
	tg := upstreamGateway(t, be)
	resp, err := newClient().Get(tg.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	close(relayed)
	body, err := io.ReadAll(resp.Body)
	if err == nil || len(body) >= 1<<20 {
		t.Fatalf("got %d bytes, err %v; want a truncated body", len(body), err)
	}
	if l := tg.accessLines(1)[0]; l["reason"] != "upstream_reset_during_response" {
		t.Errorf("access log reason %v, want upstream_reset_during_response", l["reason"])
	}
}

// A client that stops reading a large body: the client write timeout ends the relay, counted
// as the client's failure (499), not the upstream's.
func TestSplicedBodyClientStopsReading(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(256<<20))
		io.Copy(w, &patternReader{left: 256 << 20})
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, write_timeout: 500ms}]
upstreams: [{id: big, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: big}]
`, map[string]string{"b": hostport(be)})
	conn := openConn(t, tg.addr)
	conn.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	// Read nothing: the gateway's writes fill the socket buffers, then time out.
	testutil.WaitFor(t, 10*time.Second, "the access log line", func() bool { return strings.Contains(tg.access.String(), "\n") })
	l := tg.accessLines(1)[0]
	if l["status"] != float64(499) || l["reason"] != "client_body_error" {
		t.Errorf("access log status %v reason %v, want the client's failure", l["status"], l["reason"])
	}
	if out, _ := l["bytes_out"].(float64); out >= 256<<20 {
		t.Errorf("bytes_out %v: the whole body was sent to a client that read nothing", out)
	}
}

// hashBackend answers each request with the length and SHA-256 of the body it received.
func hashBackend(t *testing.T) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			return
		}
		w.Header().Set("X-Got", strconv.FormatInt(n, 10)+":"+hex.EncodeToString(h.Sum(nil)))
	}))
	t.Cleanup(be.Close)
	return be
}

// TestSplicedUploadArrivesIntact posts a 3 MiB random body twice over one client connection:
// what the gateway reads before contacting the upstream (64 KiB) is copied, the rest spliced.
func TestSplicedUploadArrivesIntact(t *testing.T) {
	data := randomBytes(3<<20 + 5)
	sum := sha256.Sum256(data)
	want := strconv.Itoa(len(data)) + ":" + hex.EncodeToString(sum[:])
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: up, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: up}]
admin: {address: 127.0.0.1:0}
`, map[string]string{"b": hostport(hashBackend(t))})
	c := newClient()
	for i := range 2 {
		resp, err := c.Post(tg.url("/"), "application/octet-stream", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Got") != want {
			t.Fatalf("upload %d: %d, backend got %q; want 200 and %q", i, resp.StatusCode, resp.Header.Get("X-Got"), want)
		}
	}
	for _, l := range tg.accessLines(2) {
		if l["bytes_in"] != float64(len(data)) {
			t.Errorf("access log bytes_in %v, want %d", l["bytes_in"], len(data))
		}
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	got, _ := f.value("sluice_spliced_bytes_total", map[string]string{"direction": "request"})
	if min := float64(2 * (len(data) - 128<<10)); got < min || got > float64(2*len(data)) {
		t.Errorf("sluice_spliced_bytes_total{direction=request} = %.0f, want between %.0f and %d", got, min, 2*len(data))
	}
}

// startUpload opens a connection to tg and sends a POST head declaring size bytes and the
// first part bytes of its body.
func startUpload(t *testing.T, tg *testGateway, size, part int) *clientConn {
	t.Helper()
	conn := openConn(t, tg.addr)
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
	conn.Write(make([]byte, part))
	return conn
}

// uploadStatus sends the start of an upload and returns the status of the gateway's answer
// (0 when none came).
func uploadStatus(t *testing.T, tg *testGateway, size, part int) int {
	t.Helper()
	resp, err := startUpload(t, tg, size, part).response()
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// A client that stalls mid-upload past the listener's read_timeout: 408 client_timeout, as
// in the copy loop.
func TestSplicedUploadClientStallsPastTheReadTimeout(t *testing.T) {
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, read_timeout: 500ms}]
upstreams: [{id: up, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: up}]
`, map[string]string{"b": hostport(hashBackend(t))})
	start := time.Now()
	if status := uploadStatus(t, tg, 1<<20, 300<<10); status != 408 {
		t.Errorf("status %d, want 408", status)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("answered after %v, want about the 500 ms read timeout", d)
	}
	if l := tg.accessLines(1)[0]; l["reason"] != "client_timeout" {
		t.Errorf("access log reason %v, want client_timeout", l["reason"])
	}
}

// An upstream that resets mid-upload: 502, and a POST is not retried (the backend may have
// acted on what it read).
func TestSplicedUploadUpstreamResets(t *testing.T) {
	var conns atomic.Int32
	be := serveConns(t, func(c net.Conn) {
		conns.Add(1)
		io.CopyN(io.Discard, c, 200<<10)
		c.(*net.TCPConn).SetLinger(0)
	})
	tg := upstreamGateway(t, be)
	if status := uploadStatus(t, tg, 4<<20, 4<<20); status != 502 {
		t.Errorf("status %d, want 502", status)
	}
	l := tg.accessLines(1)[0]
	if r, _ := l["reason"].(string); !strings.HasPrefix(r, "upstream_reset") || conns.Load() != 1 {
		t.Errorf("access log reason %v, backend connections %d; want an upstream reset and no retry", l["reason"], conns.Load())
	}
}

// An upstream that fails mid-upload leaves the client's body partly unread (and what the
// pipe held lost): the answer must close the client connection, or the gateway would read the
// client's next requests as the rest of this body.
func TestSplicedUploadFailureClosesTheClientConnection(t *testing.T) {
	reset := make(chan struct{})
	be := serveConns(t, func(c net.Conn) {
		io.CopyN(io.Discard, c, 64<<10)
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST, before the client sends the rest
		close(reset)
	})
	tg := upstreamGateway(t, be)
	const size = 200 << 10
	conn := startUpload(t, tg, size, 64<<10) // what is read before the upstream is contacted
	select {
	case <-reset: // the rest of the body meets an upstream that is gone
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not get the start of the upload")
	}
	conn.Write(make([]byte, size-64<<10)) // spliced
	io.WriteString(conn, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := conn.response()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 502 || !resp.Close {
		t.Errorf("answer %d, Connection: close %v; want 502 closing the connection", resp.StatusCode, resp.Close)
	}
	if next, err := conn.response(); err == nil {
		t.Errorf("a second response (%d) on a connection whose body was cut", next.StatusCode)
	}
}

// randomBytes returns n random bytes (a body no pattern or compression could fake).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}
