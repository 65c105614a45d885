package h2pool

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestClientFrameOnServerStream: the client refuses server push (SETTINGS_ENABLE_PUSH 0), so
// no server-initiated (even) stream can exist: HEADERS, DATA, RST_STREAM or WINDOW_UPDATE on
// stream 2 is a frame on an idle stream, a connection error PROTOCOL_ERROR (RFC 9113 §5.1,
// §6.4), as is a PUSH_PROMISE (§6.6, §8.4) and a header block the Framer refuses on stream 2
// (answered with GOAWAY, never with RST_STREAM on an idle stream). Stream 2 is below the
// client's next id (stream 1 is open), where a closed odd stream's frames are passed over.
// The client sends GOAWAY PROTOCOL_ERROR, and the open stream fails with ErrProtocol (neither
// unprocessed nor malformed), whether its head came or not. PRIORITY may come on any
// stream (§5.1): it changes nothing. After the bad frame the backend ends stream 1 whole, so
// that a client which passes the frame over answers the request.
func TestClientFrameOnServerStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(p *rawPeer)
		ok   bool // the frame is allowed: stream 1 ends whole
	}{
		{name: "HEADERS", send: func(p *rawPeer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
		}},
		{name: "DATA", send: func(p *rawPeer) { p.fr.WriteData(2, false, []byte("pushed")) }},
		{name: "RST_STREAM", send: func(p *rawPeer) { p.fr.WriteRSTStream(2, http2.ErrCodeCancel) }},
		{name: "WINDOW_UPDATE", send: func(p *rawPeer) { p.fr.WriteWindowUpdate(2, 1000) }},
		{name: "PUSH_PROMISE", send: func(p *rawPeer) {
			p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true,
				BlockFragment: p.block(":method", "GET", ":scheme", "http", ":authority", "backend", ":path", "/pushed")})
		}},
		{name: "malformed HEADERS", send: func(p *rawPeer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: p.block(":status", "200", "bad name", "x"), EndHeaders: true})
		}},
		{name: "PRIORITY", ok: true, send: func(p *rawPeer) { p.fr.WritePriority(2, http2.PriorityParam{Weight: 15}) }},
	} {
		for _, afterHead := range []bool{false, true} {
			name := tc.name + "/before the head"
			if afterHead {
				name = tc.name + "/after the head"
			}
			t.Run(name, func(t *testing.T) {
				got := make(chan string, 1)
				cc := newRawPeer(t, func(p *rawPeer) {
					p.fr.WriteSettings()
					id := p.awaitHeaders()
					if id != 1 {
						t.Errorf("the client's stream %d; want 1", id)
						return
					}
					if afterHead {
						p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(":status", "200"), EndHeaders: true})
						p.fr.WriteData(1, false, []byte("first "))
					}
					tc.send(p)
					if !afterHead {
						p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(":status", "200"), EndHeaders: true})
						p.fr.WriteData(1, false, []byte("first "))
					}
					p.fr.WriteData(1, true, []byte("whole"))
					p.reportResets(got)
				})
				body, err := getBody(t, cc)
				if tc.ok {
					if err != nil || body != "first whole" {
						t.Fatalf("body %q, %v; want the whole response (%s is allowed on any stream)", body, err, tc.name)
					}
					return
				}
				if err == nil {
					t.Fatalf("stream 1 ended whole (%q); want it failed with the connection (%s: server-initiated stream 2)", body, tc.name)
				}
				if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrUnprocessed) || errors.Is(err, ErrMalformedResponse) {
					t.Errorf("stream 1 failed with %v; want ErrProtocol, neither unprocessed nor malformed", err)
				}
				wantFirst(t, got, "GOAWAY PROTOCOL_ERROR")
			})
		}
	}
}

// TestClientFramerErrorDetail: a connection error the Framer found in a frame fails the
// streams with ErrProtocol and what it found, for the access log's error: here a DATA
// frame whose padding is longer than its payload.
func TestClientFramerErrorDetail(t *testing.T) {
	goAway := make(chan http2.ErrCode, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteRawFrame(http2.FrameData, http2.FlagDataPadded, id, []byte{10, 'a', 'b', 'c'})
		p.readGoAway(goAway)
	})
	_, err := getBody(t, cc)
	if !errors.Is(err, ErrProtocol) || !strings.Contains(fmt.Sprint(err), "pad size larger than data payload") {
		t.Errorf("the stream failed with %v; want ErrProtocol, saying what the Framer found", err)
	}
	wantGoAway(t, goAway, http2.ErrCodeProtocol)
}

// reportResets reads frames until the client closes the connection, passing on the first
// RST_STREAM ("RST_STREAM 1 PROTOCOL_ERROR") or GOAWAY ("GOAWAY PROTOCOL_ERROR") it got.
func (p *rawPeer) reportResets(got chan<- string) {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return
		}
		var s string
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			s = fmt.Sprintf("RST_STREAM %d %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			s = "GOAWAY " + f.ErrCode.String()
		default:
			continue
		}
		select {
		case got <- s:
		default: // not the first
		}
	}
}

// wantFirst fails t unless the first RST_STREAM or GOAWAY the backend got (reportResets)
// was want.
func wantFirst(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case g := <-got:
		if g != want {
			t.Errorf("backend got %s first; want %s", g, want)
		}
	case <-time.After(hangBound):
		t.Fatalf("backend got no %s", want)
	}
}

// getBody sends a GET on cc and reads its response body, returning the error of either.
func getBody(t *testing.T, cc *clientConn) (string, error) {
	t.Helper()
	type out struct {
		body string
		err  error
	}
	done := make(chan out, 1)
	go func() {
		resp, err := get(cc)
		if err != nil {
			done <- out{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- out{string(b), err}
	}()
	select {
	case o := <-done:
		return o.body, o.err
	case <-time.After(hangBound):
		t.Fatal("the GET hung")
		return "", nil
	}
}

// TestClientStreamProtocolError: a frame that breaks the protocol on one stream without
// making its message malformed (a zero WINDOW_UPDATE, a WINDOW_UPDATE taking the send window
// past 2^31-1, DATA beyond the stream window) resets that stream (RFC 9113 §5.4.2, §6.9)
// and fails it with ErrProtocol, not ErrMalformedResponse: the proxy names both a bad
// response, but only a malformed one says the answer began. The connection stays open.
func TestClientStreamProtocolError(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(p *rawPeer)
		code http2.ErrCode
	}{
		{name: "zero WINDOW_UPDATE", code: http2.ErrCodeProtocol, send: func(p *rawPeer) {
			p.fr.AllowIllegalWrites = true
			p.fr.WriteWindowUpdate(1, 0)
		}},
		{name: "send window overflow", code: http2.ErrCodeFlowControl, send: func(p *rawPeer) { p.fr.WriteWindowUpdate(1, 1<<31-1) }},
		{name: "DATA beyond the stream window", code: http2.ErrCodeFlowControl, send: func(p *rawPeer) {
			chunk := make([]byte, 16384)
			for n := 0; n <= streamWindow; n += len(chunk) { // the client reads none of it meanwhile
				p.fr.WriteData(1, false, chunk)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			cc := newRawPeer(t, func(p *rawPeer) {
				p.fr.WriteSettings()
				if id := p.awaitHeaders(); id != 1 {
					t.Errorf("the client's stream %d; want 1", id)
					return
				}
				p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(":status", "200"), EndHeaders: true})
				tc.send(p)
				p.reportResets(got)
			})
			resp, _ := getStream(t, cc)
			wantFirst(t, got, fmt.Sprintf("RST_STREAM 1 %v", tc.code))
			_, err := io.ReadAll(resp.Body)
			if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrMalformedResponse) {
				t.Errorf("the body failed with %v; want ErrProtocol, not malformed", err)
			}
			if st := cc.State(); st.Closed || st.Closing {
				t.Errorf("connection %+v after a stream error; want it open", st)
			}
		})
	}
}
