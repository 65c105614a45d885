package h2pool

// Adversarial peers for the own client connection (client.go): a raw-framer backend on
// 127.0.0.1 sends what a well-behaved server would not, and each test asserts what RFC 9113
// has the client do.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/testutil"
)

// hangBound only fails a test on a real hang.
const hangBound = 30 * time.Second

// rawPeer is the backend side of one connection, read and written with x/net's Framer.
type rawPeer struct {
	nc   net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// newRawPeer dials a listener on 127.0.0.1, starts a clientConn on the client side and
// returns both; serve runs on the backend side after the client preface was read.
func newRawPeer(t *testing.T, serve func(p *rawPeer)) *clientConn {
	t.Helper()
	return newRawPeerWrapped(t, nil, serve)
}

// newRawPeerWrapped is newRawPeer with the client's side of the connection wrapped.
func newRawPeerWrapped(t *testing.T, wrap func(net.Conn) net.Conn, serve func(p *rawPeer)) *clientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(nc, pre); err != nil || string(pre) != http2.ClientPreface {
			t.Errorf("client preface: %q, %v", pre, err)
			return
		}
		p := &rawPeer{nc: nc, fr: http2.NewFramer(nc, nc)}
		p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		p.henc = hpack.NewEncoder(&p.hbuf)
		serve(p)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		nc = wrap(nc)
	}
	cc, err := newClientConn(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		select {
		case <-done:
		case <-time.After(hangBound):
			t.Error("raw peer did not end")
		}
	})
	return cc
}

// block HPACK-encodes fields (name, value pairs).
func (p *rawPeer) block(kv ...string) []byte {
	p.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		p.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), p.hbuf.Bytes()...)
}

// awaitHeaders reads frames until the client's HEADERS, answering its SETTINGS; it returns
// the stream id (0 when the client went away).
func (p *rawPeer) awaitHeaders() uint32 {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return 0
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				p.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			return f.StreamID
		}
	}
}

// readGoAway reads frames until the client closes the connection, passing on the code of
// each GOAWAY.
func (p *rawPeer) readGoAway(codes chan<- http2.ErrCode) {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			codes <- g.ErrCode
		}
	}
}

// wantGoAway fails t unless the backend got a GOAWAY with code.
func wantGoAway(t *testing.T, codes <-chan http2.ErrCode, code http2.ErrCode) {
	t.Helper()
	select {
	case got := <-codes:
		if got != code {
			t.Errorf("GOAWAY %v, want %v", got, code)
		}
	case <-time.After(hangBound):
		t.Error("no GOAWAY")
	}
}

// awaitSettled waits until cc applied the peer's first SETTINGS.
func awaitSettled(t *testing.T, cc *clientConn) {
	t.Helper()
	select {
	case <-cc.settled:
	case <-time.After(hangBound):
		t.Fatal("no SETTINGS")
	}
}

// roundTripBounded sends req as a new stream on cc and returns its error (a response is
// closed), failing t with hung when it did not end within hangBound.
func roundTripBounded(t *testing.T, cc *clientConn, req *http.Request, hung string) error {
	t.Helper()
	cc.ReserveNewRequest()
	done := make(chan error, 1)
	go func() {
		resp, err := cc.roundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(hangBound):
		t.Fatal(hung)
		return nil
	}
}

// drain reads frames until the client closes the connection.
func (p *rawPeer) drain() {
	for {
		if _, err := p.fr.ReadFrame(); err != nil {
			return
		}
	}
}

// get sends a GET on cc and returns its response or error.
func get(cc *clientConn) (*http.Response, error) {
	req, _ := http.NewRequest("GET", "http://backend/x", nil)
	if !cc.ReserveNewRequest() {
		return nil, errClientConnClosed
	}
	return cc.roundTrip(req)
}

// TestClientSettledAfterInvalidFirstSettings: a first SETTINGS with an invalid value ends
// the connection (a connection error), and settled is closed all the same: the pool waits
// on it (awaitSettings, a spare's dial) and must not wait out its timers on a dead
// connection.
func TestClientSettledAfterInvalidFirstSettings(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2}) // only 0 or 1 (RFC 9113 §6.5.2)
		p.drain()
	})
	select {
	case <-cc.readDone:
	case <-time.After(hangBound):
		t.Fatal("the read loop did not end after an invalid SETTINGS")
	}
	select { // the read loop closes settled just after readDone
	case <-cc.settled:
	case <-time.After(hangBound):
		t.Fatal("settled not closed after the read loop ended on the first SETTINGS")
	}
}

// TestClientTrailersWithPseudoField: a HEADERS frame with END_STREAM after the response head
// is trailers, which carry no pseudo-field (RFC 9113 §8.1); a second final head with
// :status is malformed, and the body fails instead of ending as if whole.
func TestClientTrailersWithPseudoField(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true})
		p.fr.WriteData(id, false, []byte("part"))
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "500", "grpc-status", "0"), EndHeaders: true, EndStream: true})
		p.drain()
	})
	resp, err := get(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("body %q ended without error; trailers %v", b, resp.Trailer)
	}
}

// TestClientTruncatedHeadFails: a response head larger than the SETTINGS_MAX_HEADER_LIST_SIZE
// the client sent is not handed on with fields silently dropped (x/net's Framer marks such
// a head Truncated rather than failing it).
func TestClientTruncatedHeadFails(t *testing.T) {
	big := strings.Repeat("v", 6<<20) // two of these pass the 10 MiB limit, one does not
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		block := p.block(":status", "200", "x-one", big, "x-two", big, "content-length", "2")
		const frame = 16384
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:frame]})
		for block = block[frame:]; len(block) > 0; {
			n := min(len(block), frame)
			p.fr.WriteContinuation(id, n == len(block), block[:n])
			block = block[n:]
		}
		p.fr.WriteData(id, true, []byte("ok"))
		p.drain()
	})
	resp, err := get(cc)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a truncated head came through: x-two present %v, content-length %d", resp.Header.Get("X-Two") != "", resp.ContentLength)
	}
}

// TestClientPingWhileWriteStuck: a PING's wait ends with its context even when the
// connection's write side is stuck (the backend stopped reading while a request body filled
// the socket), so that the pool can retire the connection (ping_timeout); so does a new
// stream's wait to write its HEADERS.
func TestClientPingWhileWriteStuck(t *testing.T) {
	stop := make(chan struct{})
	var written atomic.Int64
	cc := newRawPeerWrapped(t, func(nc net.Conn) net.Conn { return countingConn{nc, &written} }, func(p *rawPeer) {
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		p.fr.WriteWindowUpdate(0, 1<<31-1-65535)
		p.awaitHeaders()
		<-stop // read nothing more: the client's writes fill the socket
	})
	defer close(stop)
	awaitSettled(t, cc)
	// A streamed upload larger than any socket buffer: its writer blocks in Write under wmu.
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		chunk := make([]byte, 1<<20)
		for range 512 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequest("POST", "http://backend/upload", pr)
	cc.ReserveNewRequest()
	go cc.roundTrip(req) // never answered; Cleanup's Close ends it
	// Wait until the writer is stuck: wmu held, and nothing more written, over three looks.
	for deadline, still, last := time.Now().Add(hangBound), 0, int64(-1); still < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the upload never filled the socket")
		}
		time.Sleep(100 * time.Millisecond)
		held := !cc.wmu.TryLock()
		if !held {
			cc.wmu.Unlock()
		}
		if n := written.Load(); held && n == last {
			still++
		} else {
			still, last = 0, n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cc.Ping(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("PING answered by a peer that reads nothing")
		}
	case <-time.After(hangBound):
		t.Fatal("Ping ignored its context while the write side was stuck")
	}

	// A new stream waiting to write its HEADERS ends with its request's context (the proxy's
	// try timeout), as unprocessed: nothing of it was sent.
	req, _ = http.NewRequest("POST", "http://backend/x", nil)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	req = req.WithContext(ctx2)
	cc.ReserveNewRequest()
	go func() {
		_, err := cc.roundTrip(req)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnprocessed) {
			t.Fatalf("a stream that could not write its HEADERS failed with %v, want ErrUnprocessed", err)
		}
	case <-time.After(hangBound):
		t.Fatal("a new stream ignored its context while the write side was stuck")
	}
}

// TestClientSecondGoAwayLowers: a graceful GOAWAY (last-stream-id 2^31-1) then a second
// one lowering it: the stream above the second is ErrUnprocessed (the proxy re-sends it
// whatever its method), the one below still gets its response, and no new stream starts.
func TestClientSecondGoAwayLowers(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		a, b := p.awaitHeaders(), p.awaitHeaders()
		p.fr.WriteGoAway(1<<31-1, http2.ErrCodeNo, nil)
		p.fr.WriteGoAway(min(a, b), http2.ErrCodeNo, nil)
		p.fr.WriteGoAway(max(a, b), http2.ErrCodeNo, nil) // may not raise it again (RFC 9113 §6.8)
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: min(a, b), BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
		p.drain()
	})
	type result struct {
		resp *http.Response
		err  error
	}
	results := make(chan result, 2)
	for range 2 {
		cc.ReserveNewRequest()
		go func() {
			req, _ := http.NewRequest("POST", "http://backend/x", nil)
			resp, err := cc.roundTrip(req)
			results <- result{resp, err}
		}()
	}
	var ok, unprocessed int
	for range 2 {
		select {
		case r := <-results:
			switch {
			case r.err == nil && r.resp.StatusCode == 200:
				r.resp.Body.Close()
				ok++
			case errors.Is(r.err, ErrUnprocessed):
				unprocessed++
			default:
				t.Errorf("stream failed with %v, want a response or ErrUnprocessed", r.err)
			}
		case <-time.After(hangBound):
			t.Fatal("a stream hung after the GOAWAYs")
		}
	}
	if ok != 1 || unprocessed != 1 {
		t.Errorf("%d responses and %d unprocessed; want one each", ok, unprocessed)
	}
	if cc.ReserveNewRequest() {
		t.Error("a stream was reserved after GOAWAY")
	}
}

// TestClientNegativeStreamWindow: SETTINGS_INITIAL_WINDOW_SIZE lowered below what a stream
// already sent makes its window negative (RFC 9113 §6.9.2); the body writer sends nothing
// more until WINDOW_UPDATEs bring it above zero, then exactly what they allow.
func TestClientNegativeStreamWindow(t *testing.T) {
	const body = 200 << 10
	const allowed = 65535 + 10 // the initial window, then 10 past the negative window's zero
	beforeGrant := make(chan int, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		p.fr.WriteWindowUpdate(0, 1<<30) // only the stream window limits
		id := p.awaitHeaders()
		total, ended := 0, false
		// readUntil reads frames, counting the stream's DATA, until done says so.
		readUntil := func(done func(f http2.Frame) bool) bool {
			for {
				f, err := p.fr.ReadFrame()
				if err != nil {
					return false
				}
				if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id {
					total += len(d.Data())
					ended = ended || d.StreamEnded()
				}
				if done(f) {
					return true
				}
			}
		}
		if !readUntil(func(http2.Frame) bool { return total >= 65535 }) {
			return
		}
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000}) // window 1000-65535
		if !readUntil(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() }) {
			return
		}
		p.fr.WriteWindowUpdate(id, 65535-1000+10) // window 10
		if !readUntil(func(http2.Frame) bool { return total >= allowed }) {
			return
		}
		p.fr.WritePing(false, [8]byte{1}) // a round trip for any excess DATA to arrive
		if !readUntil(func(f http2.Frame) bool { pf, ok := f.(*http2.PingFrame); return ok && pf.IsAck() }) {
			return
		}
		beforeGrant <- total
		p.fr.WriteWindowUpdate(id, body)
		if !ended && !readUntil(func(http2.Frame) bool { return ended }) {
			return
		}
		if total != body {
			t.Errorf("backend got %d bytes of a %d-byte body", total, body)
		}
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
		p.drain()
	})
	req, _ := http.NewRequest("POST", "http://backend/upload", bytes.NewReader(make([]byte, body)))
	cc.ReserveNewRequest()
	resp, err := cc.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case n := <-beforeGrant:
		if n != allowed {
			t.Errorf("the client sent %d bytes before the window allowed more; want %d", n, allowed)
		}
	default:
		t.Error("the backend did not see the window's limit")
	}
}

// TestClientWindowWaitEndsWithConnection: a request body waiting for send window when the
// backend closes the connection fails its stream, and its writer goroutine ends.
func TestClientWindowWaitEndsWithConnection(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		p.awaitHeaders()
		for total := 0; total < 65535; {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := f.(*http2.DataFrame); ok {
				total += len(d.Data())
			}
		}
		p.nc.Close() // the body writer waits for window the backend never gives
	})
	req, _ := http.NewRequest("POST", "http://backend/upload", bytes.NewReader(make([]byte, 1<<20)))
	if err := roundTripBounded(t, cc, req, "roundTrip hung after the connection closed"); !errors.Is(err, errConnLost) {
		t.Errorf("roundTrip: %v, want the connection's loss", err)
	}
	if left := testutil.Leaked(hangBound, func(g string) bool { return strings.Contains(g, "writeBody") }); left != "" {
		t.Errorf("body writer left running:\n%s", left)
	}
}

// TestClientHeaderTableSizeZero: a backend whose SETTINGS_HEADER_TABLE_SIZE is 0 gets header
// blocks that index nothing in its dynamic table (its decoder allows none), on every stream.
func TestClientHeaderTableSizeZero(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.ReadMetaHeaders = hpack.NewDecoder(0, nil) // a block growing the table fails to decode
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("backend: %v", err)
				}
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					p.fr.WriteSettingsAck()
				}
			case *http2.MetaHeadersFrame:
				p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
			}
		}
	})
	<-cc.settled
	for i := range 3 {
		req, _ := http.NewRequest("GET", "http://backend/x", nil)
		req.Header.Set("X-Custom", "same value each time")
		cc.ReserveNewRequest()
		resp, err := cc.roundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
}

// TestClientInterimHeadsBounded: 1xx heads are passed over, but not without end: their
// fields together count against the header list limit (as x/net's Transport had it), so a
// backend cannot keep a stream busy decoding interim heads.
func TestClientInterimHeadsBounded(t *testing.T) {
	pad := strings.Repeat("p", 15000)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		for range 1000 { // 15 MB of interim fields, past the 10 MiB limit
			if p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "103", "x-pad", pad), EndHeaders: true}) != nil {
				return
			}
		}
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
		p.drain()
	})
	resp, err := get(cc)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a response came after 15 MB of 1xx heads")
	}
}

// TestClientFrameAboveMaxFrameSize: a frame larger than the SETTINGS_MAX_FRAME_SIZE the
// client advertised (1 MiB) is a connection error FRAME_SIZE_ERROR (RFC 9113 §4.2), not
// read into a buffer of up to 16 MiB; one of that size is taken.
func TestClientFrameAboveMaxFrameSize(t *testing.T) {
	goAway := make(chan http2.ErrCode, 1)
	advertised := make(chan uint32, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		if f, err := p.fr.ReadFrame(); err == nil { // the client's SETTINGS come first
			v, _ := f.(*http2.SettingsFrame).Value(http2.SettingMaxFrameSize)
			advertised <- v
			p.fr.WriteSettingsAck()
		}
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true})
		p.fr.WriteData(id, false, make([]byte, maxReadFrame))
		p.fr.WriteData(id, true, make([]byte, maxReadFrame+1))
		p.readGoAway(goAway)
	})
	resp, err := get(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err == nil || len(b) != maxReadFrame {
		t.Fatalf("read %d bytes, %v; want the first frame's %d, then a failure", len(b), err, maxReadFrame)
	}
	wantGoAway(t, goAway, http2.ErrCodeFrameSize)
	if v := <-advertised; v != maxReadFrame {
		t.Errorf("SETTINGS_MAX_FRAME_SIZE %d advertised, want %d", v, maxReadFrame)
	}
}

// cutConn fails its writes once cut: the first after the cut gets through only keep bytes
// (as a connection closed, or reset by the backend, while it was written).
type cutConn struct {
	net.Conn
	cut  atomic.Bool
	keep int
}

func (c *cutConn) Write(b []byte) (int, error) {
	if !c.cut.Load() {
		return c.Conn.Write(b)
	}
	n, _ := c.Conn.Write(b[:min(c.keep, len(b))])
	c.keep = 0
	c.Conn.Close()
	return n, net.ErrClosed
}

// TestClientHeadersWriteFails: a stream whose HEADERS did not all get out (its write failed
// before the block's end: the connection was closed, or reset, meanwhile) was provably not
// processed, and fails with ErrUnprocessed so that the proxy re-sends it, a POST too.
func TestClientHeadersWriteFails(t *testing.T) {
	for _, keep := range []int{0, 5} {
		var c *cutConn
		cc := newRawPeerWrapped(t, func(nc net.Conn) net.Conn { c = &cutConn{Conn: nc, keep: keep}; return c }, func(p *rawPeer) {
			p.fr.WriteSettings()
			p.drain()
		})
		<-cc.settled
		c.cut.Store(true)
		req, _ := http.NewRequest("POST", "http://backend/x", heldBody{strings.NewReader("payload")})
		req.ContentLength = 7
		cc.ReserveNewRequest()
		if _, err := cc.roundTrip(req); !errors.Is(err, ErrUnprocessed) {
			t.Errorf("%d bytes of the HEADERS written: %v, want ErrUnprocessed", keep, err)
		}
	}
}

// TestClientResetAfterEndStream: a RST_STREAM after the whole response (a backend stopping
// the request body it no longer needs) leaves that response whole.
func TestClientResetAfterEndStream(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true})
		p.fr.WriteData(id, true, []byte("whole"))
		p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		p.drain()
	})
	pr, pw := io.Pipe() // a request body still streaming
	defer pw.Close()
	req, _ := http.NewRequest("POST", "http://backend/x", pr)
	cc.ReserveNewRequest()
	resp, err := cc.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "whole" {
		t.Fatalf("body %q, %v; want the whole response", b, err)
	}
}

// TestClientFrameOnIdleStream: DATA on a stream the client never opened is a connection
// error PROTOCOL_ERROR (RFC 9113 §5.1): GOAWAY, and the open stream fails.
func TestClientFrameOnIdleStream(t *testing.T) {
	goAway := make(chan http2.ErrCode, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteData(id+2, false, []byte("x"))
		p.readGoAway(goAway)
	})
	req, _ := http.NewRequest("GET", "http://backend/x", nil)
	if err := roundTripBounded(t, cc, req, "the stream did not fail with the connection: it hung"); err == nil {
		t.Fatal("the stream did not fail with the connection")
	}
	wantGoAway(t, goAway, http2.ErrCodeProtocol)
}

// countingConn counts the bytes written on a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// TestClientWindowUpdateOverflow: a WINDOW_UPDATE taking a stream's send window past
// 2^31-1 resets that stream with FLOW_CONTROL_ERROR, one taking the connection's past it is
// a connection error FLOW_CONTROL_ERROR (RFC 9113 §6.9.1).
func TestClientWindowUpdateOverflow(t *testing.T) {
	type sent struct { // what the backend got (not the frame: its Framer reuses it)
		typ  http2.FrameType
		code http2.ErrCode
	}
	got := make(chan sent, 2)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteWindowUpdate(id, 1<<31-1)
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				got <- sent{f.Type, f.ErrCode}
				p.fr.WriteWindowUpdate(0, 1<<31-1)
			case *http2.GoAwayFrame:
				got <- sent{f.Type, f.ErrCode}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	pr, pw := io.Pipe() // a request body still to send: the stream stays open
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://backend/x", pr)
	cc.ReserveNewRequest()
	if resp, err := cc.roundTrip(req); err == nil || ctx.Err() != nil {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("the stream did not fail with its window's overflow: %v", err)
	}
	for _, want := range []string{"RST_STREAM", "GOAWAY"} {
		select {
		case f := <-got:
			if f.typ.String() != want || f.code != http2.ErrCodeFlowControl {
				t.Errorf("backend got %v %v, want %s FLOW_CONTROL_ERROR", f.typ, f.code, want)
			}
		case <-time.After(hangBound):
			t.Fatalf("backend got no %s", want)
		}
	}
}

// TestClientHeadersWriteStuck: a stream whose HEADERS write is stuck (the backend stopped
// reading, the socket is full) ends with its request's context, not with the write: the
// write is stopped and the connection closed (its HPACK state and framing are broken then).
// A header block far larger than the socket buffers (made small) stands in for the full
// socket here.
func TestClientHeadersWriteStuck(t *testing.T) {
	stop := make(chan struct{})
	small := func(nc net.Conn) net.Conn { nc.(*net.TCPConn).SetWriteBuffer(64 << 10); return nc }
	cc := newRawPeerWrapped(t, small, func(p *rawPeer) {
		p.nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		p.fr.WriteSettings()
		<-stop // read nothing: the client's write fills the socket
	})
	defer close(stop)
	awaitSettled(t, cc)
	req, _ := http.NewRequest("GET", "http://backend/x", nil)
	req.Header.Set("X-Big", strings.Repeat("~", 2<<20)) // longer in Huffman code: sent as is
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req = req.WithContext(ctx)
	err := roundTripBounded(t, cc, req, "the stream waited on its stuck HEADERS write past its request's end")
	if !errors.Is(err, ErrUnprocessed) {
		t.Errorf("a stream whose HEADERS were cut short failed with %v, want ErrUnprocessed", err)
	}
	testutil.WaitFor(t, hangBound, "the connection closed", func() bool { return cc.State().Closed })
}

// stallConn, once armed, stalls a write as a socket whose peer stopped reading does: all but
// the last hold bytes of the write get through, then it waits for its write deadline.
// With finish, the write ends whole when a deadline is set (the backend read just then).
type stallConn struct {
	net.Conn
	armed    atomic.Bool
	hold     int
	finish   bool
	mu       sync.Mutex
	deadline time.Time
	set      chan struct{}
}

func (c *stallConn) SetWriteDeadline(d time.Time) error {
	c.mu.Lock()
	c.deadline = d
	c.mu.Unlock()
	select {
	case c.set <- struct{}{}:
	default:
	}
	if c.finish {
		return nil // the stalled write ends whole all the same; Write keeps the deadline
	}
	return c.Conn.SetWriteDeadline(d)
}

func (c *stallConn) Write(b []byte) (int, error) {
	if !c.armed.Load() {
		c.mu.Lock()
		d := c.deadline
		c.mu.Unlock()
		if c.finish && !d.IsZero() && !time.Now().Before(d) { // the deadline kept here, not on Conn
			return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
		}
		return c.Conn.Write(b)
	}
	n, err := c.Conn.Write(b[:max(len(b)-c.hold, 0)])
	if err != nil {
		return n, err
	}
	for {
		c.mu.Lock()
		d := c.deadline
		c.mu.Unlock()
		if !d.IsZero() && c.finish {
			c.armed.Store(false)
			m, err := c.Conn.Write(b[n:])
			return n + m, err
		}
		if !d.IsZero() && !time.Now().Before(d) {
			return n, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
		}
		select {
		case <-c.set:
		case <-time.After(hangBound):
			return n, errors.New("stalled write: no deadline came")
		}
	}
}

// TestClientHeadersWriteStopped: a stream whose write stalls and is stopped when its request
// ends is unprocessed when its header block did not all get out, and not when it did (the
// inline DATA after it was cut: the backend may have begun to process the request).
func TestClientHeadersWriteStopped(t *testing.T) {
	const dataFrame = 9 + len("payload") // the inline DATA at the end of the write
	tests := []struct {
		name            string
		hold            int // bytes held back from the end of the stream's write
		wantUnprocessed bool
	}{
		{"nothing written", 1 << 20, true},
		{"header block one byte short", dataFrame + 1, true},
		{"header block whole, DATA cut", dataFrame, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &stallConn{hold: tc.hold, set: make(chan struct{}, 1)}
			cc := newRawPeerWrapped(t, func(nc net.Conn) net.Conn { c.Conn = nc; return c }, func(p *rawPeer) {
				p.fr.WriteSettings()
				p.drain()
			})
			awaitSettled(t, cc)
			c.armed.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://backend/x", heldBody{strings.NewReader("payload")})
			req.ContentLength = 7
			err := roundTripBounded(t, cc, req, "the stream waited on its stalled write past its request's end")
			if err == nil || errors.Is(err, ErrUnprocessed) != tc.wantUnprocessed {
				t.Errorf("failed with %v; want unprocessed %v", err, tc.wantUnprocessed)
			}
			testutil.WaitFor(t, hangBound, "the connection closed", func() bool { return cc.State().Closed })
		})
	}
}

// TestClientHeadersWriteFinishedAtCancel: a stalled HEADERS write that still ends whole as
// its request ends (the deadline meant to stop it came too late) resets its stream, and the
// connection goes on: the deadline does not stay to fail the writes after it.
func TestClientHeadersWriteFinishedAtCancel(t *testing.T) {
	c := &stallConn{hold: 1, finish: true, set: make(chan struct{}, 1)}
	rst := make(chan http2.ErrCode, 1)
	cc := newRawPeerWrapped(t, func(nc net.Conn) net.Conn { c.Conn = nc; return c }, func(p *rawPeer) {
		p.fr.WriteSettings()
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				rst <- f.ErrCode
			case *http2.MetaHeadersFrame:
				if f.StreamID > 1 {
					p.answer(f.StreamID)
				}
			}
		}
	})
	awaitSettled(t, cc)
	c.armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/x", nil)
	cc.ReserveNewRequest()
	if resp, err := cc.roundTrip(req); err == nil || errors.Is(err, ErrUnprocessed) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("the stream whose request ended failed with %v; want its context's error", err)
	}
	select {
	case code := <-rst:
		if code != http2.ErrCodeCancel {
			t.Errorf("RST_STREAM %v, want CANCEL", code)
		}
	case <-time.After(hangBound):
		t.Fatal("no RST_STREAM for the stream whose request ended")
	}
	resp, err := get(cc)
	if err != nil {
		t.Fatalf("the next stream on the connection: %v", err)
	}
	resp.Body.Close()
}

// TestClientMalformedResponses: a response RFC 9113 §8.1.1 calls malformed resets its stream
// with PROTOCOL_ERROR: content-length values that differ or do not parse (identical ones
// are one length, as the HTTP/1.1 codec takes them), DATA on a response to HEAD.
func TestClientMalformedResponses(t *testing.T) {
	tests := []struct {
		name, method string
		head         []string // after :status 200
		data         string   // a DATA frame after the head, ending the stream ("": none, the head ends it)
		wantLength   int64    // the response's ContentLength; -2: the stream fails
	}{
		// The body fits one of the values (the last, then the first): only refusing the
		// conflict fails these rows, not a body that ends short of the value kept.
		{"differing content-length, body fits the last", "GET", []string{"content-length", "5", "content-length", "6"}, "hello!", -2},
		{"differing content-length, body fits the first", "GET", []string{"content-length", "6", "content-length", "5"}, "hello!", -2},
		{"content-length not a number", "GET", []string{"content-length", "5x"}, "hello", -2},
		{"content-length list that differs", "GET", []string{"content-length", "5, 6"}, "hello", -2},
		{"identical content-length", "GET", []string{"content-length", "5", "content-length", "5, 5"}, "hello", 5},
		{"DATA on a HEAD response", "HEAD", []string{"content-length", "1"}, "x", -2},
		{"HEAD response with its length only", "HEAD", []string{"content-length", "1"}, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rst := make(chan http2.ErrCode, 1)
			cc := newRawPeer(t, func(p *rawPeer) {
				p.fr.WriteSettings()
				id := p.awaitHeaders()
				p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(append([]string{":status", "200"}, tc.head...)...),
					EndHeaders: true, EndStream: tc.data == ""})
				if tc.data != "" {
					p.fr.WriteData(id, true, []byte(tc.data))
				}
				for {
					f, err := p.fr.ReadFrame()
					if err != nil {
						return
					}
					if r, ok := f.(*http2.RSTStreamFrame); ok {
						rst <- r.ErrCode
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, "http://backend/x", nil)
			cc.ReserveNewRequest()
			resp, err := cc.roundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body) // DATA on HEAD fails the body
				resp.Body.Close()
			}
			if ctx.Err() != nil {
				t.Fatal("no answer")
			}
			if tc.wantLength == -2 {
				if err == nil {
					t.Fatalf("a malformed response passed (content-length %d)", resp.ContentLength)
				}
				if !errors.Is(err, ErrMalformedResponse) { // the proxy answers it upstream_bad_response, not retried
					t.Errorf("the stream failed with %v; want ErrMalformedResponse", err)
				}
				select {
				case code := <-rst:
					if code != http2.ErrCodeProtocol {
						t.Errorf("RST_STREAM %v, want PROTOCOL_ERROR", code)
					}
				case <-time.After(hangBound):
					t.Error("no RST_STREAM")
				}
				return
			}
			if err != nil || resp.ContentLength != tc.wantLength {
				t.Errorf("%v, content-length %d; want %d", err, resp.ContentLength, tc.wantLength)
			}
		})
	}
}

// TestClientStreamErrorOnIdleStream: a frame the Framer fails as a stream error (a malformed
// header block) on a stream the client never opened is a connection error PROTOCOL_ERROR
// (RFC 9113 §5.1), not answered with RST_STREAM, which may not be sent on an idle stream
// (§6.4).
func TestClientStreamErrorOnIdleStream(t *testing.T) {
	got := make(chan string, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id + 2, BlockFragment: p.block(":status", "200", "bad name", "x"), EndHeaders: true, EndStream: true})
		p.reportResets(got)
	})
	req, _ := http.NewRequest("GET", "http://backend/x", nil)
	if err := roundTripBounded(t, cc, req, "the open stream did not fail with the connection: it hung"); err == nil {
		t.Fatal("the open stream did not fail with the connection")
	}
	wantFirst(t, got, "GOAWAY PROTOCOL_ERROR")
}

// TestClientBodyBufferBounded: a response body whose reader never quite catches up (1 MiB
// unread at every moment, for 18 MiB) is buffered in no more than the stream window's
// worth: the part read is dropped before the buffer grows.
func TestClientBodyBufferBounded(t *testing.T) {
	const mib = 1 << 20
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true})
		chunk := make([]byte, 16384)
		send := func(n int) {
			for ; n > 0; n -= len(chunk) {
				p.fr.WriteData(id, false, chunk)
			}
		}
		send(2 * mib)
		for range 16 { // 1 MiB more for each stream WINDOW_UPDATE (a quarter of the 4 MiB window)
			for {
				f, err := p.fr.ReadFrame()
				if err != nil {
					return
				}
				if w, ok := f.(*http2.WindowUpdateFrame); ok && w.StreamID == id {
					break
				}
			}
			send(mib)
		}
		p.fr.WriteData(id, true, nil)
		p.drain()
	})
	resp, cs := getStream(t, cc)
	buf := make([]byte, mib)
	peak := 0
	for range 17 { // each read, once 2 MiB came, leaves 1 MiB unread and brings the next MiB
		testutil.WaitFor(t, hangBound, "2 MiB received and unread", func() bool {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			return len(cs.buf)-cs.off >= 2*mib
		})
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cc.mu.Lock()
		peak = max(peak, cap(cs.buf))
		cc.mu.Unlock()
	}
	if peak > 8*mib {
		t.Errorf("the body's buffer reached %d MiB for 1 MiB unread; want it within twice the 4 MiB stream window", peak/mib)
	}
}
