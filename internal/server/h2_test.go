package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"sluice/internal/h1"
)

// duplexHandler echoes each request body read back as a response body write, reading in
// one goroutine and writing in another, as a gRPC bidirectional stream is proxied.
type duplexHandler struct{}

func (duplexHandler) ServeH1(ex *Exchange) {
	ex.WriteError(ErrBodyTooLarge, "")
}

func (duplexHandler) ServeH2(s *Stream) {
	chunks := make(chan []byte)
	go func() { // the request side
		defer close(chunks)
		buf := make([]byte, 64)
		for {
			n, err := s.ReadBody(buf)
			if n > 0 {
				chunks <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	var h h1.Header
	h.Add("Content-Type", "text/plain")
	s.WriteHead(200, nil, &h, h1.LengthUnknown)
	s.Flush()
	for c := range chunks { // the response side, while the request body goes on
		s.Write(c)
		s.Flush()
	}
	var tr h1.Header
	tr.Add("X-Done", "yes")
	s.Finish(&tr)
}

func startH2C(t *testing.T, h Handler) string {
	t.Helper()
	return startH2CWith(t, h, nil)
}

// startH2CWith is startH2C with the settings changed by edit (nil: none).
func startH2CWith(t *testing.T, h Handler, edit func(*Settings)) string {
	t.Helper()
	addr, _ := startH2CServer(t, h, edit)
	return addr
}

// startH2CServer is startH2CWith that also returns the Server.
func startH2CServer(t *testing.T, h Handler, edit func(*Settings)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := Settings{Name: "t", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
		H2: &H2Settings{Cleartext: true, MaxConcurrentStreams: 10, StreamWindow: 1 << 20, ConnWindow: 1 << 20, MaxFrameBytes: 16384,
			MaxResetsPerSecond: 100, MaxControlPerSecond: 100, MaxEmptyPerSecond: 100, MaxContinuations: 16, DrainWait: 10 * time.Millisecond}}
	if edit != nil {
		edit(&st)
	}
	return ln.Addr().String(), serveUntilEnd(t, ln, st, h)
}

// TestStreamFullDuplex: a Stream's request body is read in one goroutine while another
// writes the response: each line the client sends comes back before it sends the next
// (ping-pong over one stream), and the trailer ends the response. Run with -race, it also
// guards the Stream's doc comment (the two sides share no unguarded state).
func TestStreamFullDuplex(t *testing.T) {
	addr := startH2C(t, duplexHandler{})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/duplex", pr)
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Error(err)
			close(respc)
			return
		}
		respc <- resp
	}()
	pw.Write([]byte("ping 0\n"))
	resp := <-respc
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 5 {
		if i > 0 {
			pw.Write([]byte("ping " + string(rune('0'+i)) + "\n"))
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "ping "+string(rune('0'+i))+"\n" {
			t.Fatalf("round %d: got %q, %v", i, line, err)
		}
	}
	pw.Close()
	if rest, _ := io.ReadAll(br); len(rest) != 0 || resp.Trailer.Get("X-Done") != "yes" {
		t.Fatalf("after the body: %q, trailer %v", rest, resp.Trailer)
	}
}

// TestH2CPrefaceDetection: on an h2c listener, the preface starts HTTP/2, an HTTP/1.1
// request is served as one (even one that begins like the preface, "P..."), and a first
// line that is no HTTP/1.x request-line goes to HTTP/2, which closes the connection (after
// its SETTINGS: no HTTP/1.1 answer).
func TestH2CPrefaceDetection(t *testing.T) {
	addr := startH2C(t, duplexHandler{})
	for _, tc := range []struct {
		name, send, want string
	}{
		{"http/1.1", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP/1.1 413 "},
		{"not a request-line", "INVALID CONNECTION PREFACE\r\n\r\n", ""}, // closed, at most a SETTINGS frame first
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(tc.send))
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(c) // to the close
			if err != nil || !bytes.HasPrefix(got, []byte(tc.want)) || tc.want == "" && bytes.HasPrefix(got, []byte("HTTP/")) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
