package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestH2UpstreamBodyEndsWithItsData: a request body the gateway holds whole goes to an
// HTTP/2 upstream as DATA frames whose last one carries END_STREAM, never followed by an
// empty DATA frame (one write and one frame fewer per gRPC unary call, issue #16). The
// backend is a raw h2c server that reports the DATA frames of the one stream it serves. (A
// body of known length ended so already: the library sends END_STREAM once it sent that
// many bytes.)
func TestH2UpstreamBodyEndsWithItsData(t *testing.T) {
	// As a gRPC client sends a unary call: HTTP/2, no content-length, the message in one DATA
	// frame that ends the stream. (Go's client ends a body of unknown length with an empty
	// DATA frame of its own; arriving late on a loaded machine, it left the body streamed,
	// not held, and the upstream rightly got the same empty frame.)
	//
	// The same when the DATA frame comes well after the HEADERS: a gRPC call goes upstream
	// without waiting for its body (readBodyPrefix), and the attempt's read of it takes the
	// body's end with its last bytes (h2Body.Read), so the last DATA frame still ends the
	// stream.
	for _, pause := range []time.Duration{0, 100 * time.Millisecond} {
		tg, _, frames := rawH2Upstream(t, false)
		if status := grpcShapedCall(t, tg.addr, "/call", "hello, backend", pause); status != "200" {
			t.Fatalf("status %s", status)
		}
		if got, want := <-frames, "DATA 14 END_STREAM;"; got != want {
			t.Errorf("DATA %v after the HEADERS: the backend read the body as %q, want %q", pause, got, want)
		}
	}
}

// grpcShapedCall sends one h2c request to addr with a raw framer: HEADERS without
// content-length, then, pause later, body in one DATA frame with END_STREAM. It returns the
// response's :status once its head arrives.
func grpcShapedCall(t *testing.T, addr, path, body string, pause time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", addr}, {":path", path},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if err := fr.WriteData(1, true, []byte(body)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// rawH2Upstream starts a gateway with an h2c listener in front of an h2c upstream served by
// serveOneStream (one connection, stall as given), and returns the gateway, an h2c client
// of it (10 s timeout) and where the backend reports what it read.
func rawH2Upstream(t *testing.T, stall bool) (*testGateway, *http.Client, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serveOneStream(c, frames, stall)
	}()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: b
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: all
    upstream: b
`, map[string]string{"backend": ln.Addr().String()})
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &h2c}
	t.Cleanup(tr.CloseIdleConnections) // before the gateway's shutdown, which would wait for it
	return tg, &http.Client{Transport: tr, Timeout: 10 * time.Second}, frames
}

// serveOneStream is an h2c server for one request: it answers 200 once the request's stream
// ended, sends its DATA frames as "DATA <length>[ END_STREAM];" each on frames (an error's
// text when the exchange failed), and reads on until the client leaves. With stall, the
// answer's head does not end the stream and no more comes: what frames gets ends with
// "RST_STREAM <code>" once the client resets the stream.
func serveOneStream(c net.Conn, frames chan<- string, stall bool) {
	frames <- readOneStream(c, stall)
	io.Copy(io.Discard, c)
}

func readOneStream(c net.Conn, stall bool) string {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return fmt.Sprintf("preface %q: %v", preface, err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return err.Error()
	}
	var got strings.Builder
	var answered uint32
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return got.String() + err.Error()
		}
		var end bool
		var id uint32
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			end, id = f.StreamEnded(), f.StreamID
		case *http2.DataFrame:
			fmt.Fprintf(&got, "DATA %d", len(f.Data()))
			if f.StreamEnded() {
				got.WriteString(" END_STREAM")
			}
			got.WriteString(";")
			end, id = f.StreamEnded(), f.StreamID
		case *http2.RSTStreamFrame:
			if f.StreamID == answered {
				return got.String() + "RST_STREAM " + f.ErrCode.String()
			}
		}
		if end && answered == 0 {
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: !stall, EndHeaders: true})
			if !stall {
				return got.String()
			}
			answered = id
		}
	}
}

// TestH2UpstreamGRPCTimeoutAfterHead: a gRPC call's grpc-timeout bounds its upstream
// attempt after the response head too: a backend that sends its head and then nothing is
// reset (CANCEL) at the deadline, and the client's answer ends then, not at the try timeout
// (one timer serves both phases; issue #16).
func TestH2UpstreamGRPCTimeoutAfterHead(t *testing.T) {
	tg, c, frames := rawH2Upstream(t, true)
	req, _ := http.NewRequest("POST", tg.url("/svc/Call"), strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "300m")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("the call ended after %v, want about 300ms (its grpc-timeout)", took)
	}
	select {
	case got := <-frames:
		if !strings.HasSuffix(got, "RST_STREAM CANCEL") {
			t.Errorf("the backend saw %q, want its stream reset with CANCEL", got)
		}
	case <-time.After(5 * time.Second):
		t.Error("the backend's stream was not reset")
	}
}
