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

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/testutil"
)

// TestH2UpstreamTryTimeoutWhileWritesStuck: a request whose stream cannot get its HEADERS
// out before its try timeout (the connection's writes are stuck behind an upload the backend
// stopped reading) is answered 504 upstream_timeout when the try timeout fires, as one
// counted try; it is not re-sent for free on another connection (each free re-send would
// wait out the try timeout again). The backend's first connection stops reading after the
// upload's HEADERS; any later connection answers every stream. Nothing of the request was
// processed, so with timeout in retry.on the POST is tried again (counted). The first try's
// wait made the stuck connection stop taking streams (write_stuck), so the retry, and any
// later request, goes on a new connection and is answered. The upload's own route has a
// long try timeout: its stream ending would stop its write and close the connection.
func TestH2UpstreamTryTimeoutWhileWritesStuck(t *testing.T) {
	for _, tc := range []struct {
		name, retry  string
		wantStatus   int
		wantAttempts float64
	}{
		{"default retry.on", "{per_try_timeout: 300ms}", 504, 1},
		{"on timeout", "{on: [timeout], attempts: 2, per_try_timeout: 300ms, backoff_base: 1ms, backoff_max: 2ms}", 200, 2},
	} {
		t.Run(tc.name, func(t *testing.T) { tryTimeoutWhileWritesStuck(t, tc.retry, tc.wantStatus, tc.wantAttempts) })
	}
}

func tryTimeoutWhileWritesStuck(t *testing.T, retry string, wantStatus int, wantAttempts float64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var laterStreams atomic.Int64
	stop := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n == 0 {
				go testutil.StallAfterHeaders(c, stop, nil)
			} else {
				go answerStreams(c, &laterStreams)
			}
		}
	}()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: b
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    h2: {ping_after_idle: 1m} # no PING check retires the stuck connection on a slow run
    retry: {{retry}}
routes:
  - id: upload
    match: {path: /upload}
    upstream: b
    retry: {per_try_timeout: 1m}
  - id: all
    upstream: b
`, map[string]string{"backend": ln.Addr().String(), "retry": retry})
	defer close(stop) // before the gateway's shutdown (Cleanup), which waits for the upload

	// The upload: a chunked body larger than the buffered prefix streams to the backend,
	// which reads none of it; its writer ends up stuck in a Write.
	pr, pw := io.Pipe()
	defer pw.Close()
	var written atomic.Int64
	go func() {
		chunk := make([]byte, 64<<10)
		for range 1024 {
			n, err := pw.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() {
		req, _ := http.NewRequest("POST", "http://"+tg.addr+"/upload", pr)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Stuck: nothing more taken from the client over three looks.
	testutil.WaitStill(t, 30*time.Second, "the upload to fill the sockets", written.Load)

	resp, err := http.Post("http://"+tg.addr+"/x", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != wantStatus || wantStatus == 504 && !bytes.Contains(body, []byte("upstream_timeout")) {
		t.Errorf("a request that could not be written within its try timeout: %d %q; want %d (504 upstream_timeout without a retry)", resp.StatusCode, body, wantStatus)
	}
	wantLater := int64(0) // not re-sent for free on a new connection: its try timed out
	if wantStatus == 200 {
		wantLater = 1 // the counted retry, on a new connection
	}
	if n := laterStreams.Load(); n != wantLater {
		t.Errorf("it was sent on %d new connection(s); want %d", n, wantLater)
	}
	// The stuck connection takes no new stream: the next request is answered on a new one.
	next, err := http.Get("http://" + tg.addr + "/next")
	if err != nil {
		t.Fatal(err)
	}
	next.Body.Close()
	if next.StatusCode != 200 || laterStreams.Load() != wantLater+1 {
		t.Errorf("the request after: %d, %d streams on new connections; want 200 on a new connection", next.StatusCode, laterStreams.Load()-wantLater)
	}
	var attempts any
	testutil.WaitFor(t, 10*time.Second, "the POST's access line", func() bool {
		for _, l := range tg.accessLines(1) {
			if l["path"] == "/x" {
				attempts = l["attempts"]
				return true
			}
		}
		return false
	})
	if attempts != wantAttempts {
		t.Errorf("the POST took %v attempts; want %v", attempts, wantAttempts)
	}
}

// answerStreams is an h2c backend connection that answers each stream 200 once it ended,
// counting the streams in n.
func answerStreams(c net.Conn, n *atomic.Int64) {
	answerStreamsWith(c, n, []string{":status", "200"}, "")
}

// answerStreamsWith is answerStreams answering with a head of fields head (encoded as they
// are, however invalid) and body ("": none).
func answerStreamsWith(c net.Conn, n *atomic.Int64, head []string, body string) {
	defer c.Close()
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, pre); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := 0; i < len(head); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: head[i], Value: head[i+1]})
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		var end bool
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			n.Add(1)
			end = f.StreamEnded()
		case *http2.DataFrame:
			end = f.StreamEnded()
		}
		if end {
			id := f.Header().StreamID
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: body == ""})
			if body != "" {
				fr.WriteData(id, true, []byte(body))
			}
		}
	}
}
