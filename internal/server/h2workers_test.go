package server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
)

// workerHandler answers "/ok" 200, panics on "/panic", aborts "/abort" after its head, and
// on "/big" writes 64 MiB, reporting on writeErr when a write fails.
type workerHandler struct {
	writeErr chan error
}

func (workerHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (w workerHandler) ServeH2(s *Stream) {
	var h h1.Header
	switch string(s.Req.Path) {
	case "/panic":
		panic("handler bug")
	case "/abort":
		s.WriteHead(200, nil, &h, 10)
		s.Write([]byte("12345"))
		s.Abort()
	case "/big":
		s.WriteHead(200, nil, &h, h1.LengthUnknown)
		chunk := make([]byte, 16<<10)
		for range 4096 {
			if _, err := s.Write(chunk); err != nil {
				w.writeErr <- err
				return
			}
		}
		w.writeErr <- nil
	default:
		s.WriteHead(200, nil, &h, 2)
		s.Write([]byte("ok"))
	}
}

// TestH2WorkersPanicAndAbort: streams run on workers (h2workers.go), and what the library
// did with a stream's handler still happens: a handler that panics or aborts gets its
// stream reset (the client sees an error, not a response), and the connection and the
// workers go on serving the streams after it, many at once.
func TestH2WorkersPanicAndAbort(t *testing.T) {
	addr := startH2C(t, workerHandler{})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string) (string, error) {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, path := range []string{"/panic", "/abort"} {
		if body, err := get(path); err == nil || !strings.Contains(err.Error(), "INTERNAL_ERROR") {
			t.Errorf("%s: body %q, error %v; want the stream reset with INTERNAL_ERROR", path, body, err)
		}
	}
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if body, err := get("/ok"); err != nil || body != "ok" {
				t.Errorf("/ok: %q, %v", body, err)
			}
		})
	}
	wg.Wait()
	if body, err := get("/panic"); err == nil {
		t.Errorf("/panic after the others: body %q; want a reset", body)
	}
}

// TestH2WriteTimeout: a client that opens its flow-control windows wide and then stops
// reading stalls the server's writes; write_timeout ends the connection (h2Wire.armWrite:
// within half to all of the timeout after the last progress), and the handler's write fails
// instead of waiting forever.
func TestH2WriteTimeout(t *testing.T) {
	wh := workerHandler{writeErr: make(chan error, 1)}
	addr := startH2CWith(t, wh, func(st *Settings) { st.WriteTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // keep what the kernel takes for the client small
	}
	fr := http2.NewFramer(c, c)
	c.Write([]byte(h2Preface))
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/big"}, {":authority", "x"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(hb.String()), EndStream: true, EndHeaders: true})
	// The client reads nothing from here on.
	select {
	case err := <-wh.writeErr:
		if err == nil {
			t.Fatal("the handler wrote 64 MiB to a client that reads nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's write still waits 5s after the client stopped reading; write_timeout is 300ms")
	}
}
