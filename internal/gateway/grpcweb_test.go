package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"sluice/internal/testutil"
)

// grpcWebYAML is a gateway whose route translates grpc-web to gRPC over h2c to {{backend}}.
const grpcWebYAML = `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: web
    upstream: grpc
    grpc_web: true
`

// grpcTestService starts a grpc-go TestService and returns its address.
func grpcTestService(tb testing.TB) string {
	tb.Helper()
	return grpcServe(tb, &grpcBackend{done: make(chan error, 4)})
}

// grpcServe serves be as a grpc-go TestService (with the server options opts) on a loopback
// port until the test ends, and returns its address.
func grpcServe(tb testing.TB, be testgrpc.TestServiceServer, opts ...grpc.ServerOption) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serveGRPC(tb, ln, be, opts...)
	return ln.Addr().String()
}

// grpcTLS is the server option of a grpc-go server over TLS with a certificate of ca's for
// 127.0.0.1.
func grpcTLS(tb testing.TB, ca *testutil.CA) grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(ca.ServerConfig(tb, "127.0.0.1")))
}

// serveGRPC serves be as a grpc-go TestService on ln until the test ends.
func serveGRPC(tb testing.TB, ln net.Listener, be testgrpc.TestServiceServer, opts ...grpc.ServerOption) {
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, be)
	go srv.Serve(ln)
	tb.Cleanup(srv.Stop)
}

// grpcWebGateway starts a grpc-go TestService and a gateway whose route translates grpc-web
// to gRPC over h2c to it.
func grpcWebGateway(t *testing.T) *testGateway {
	t.Helper()
	return startGateway(t, grpcWebYAML, map[string]string{"backend": grpcTestService(t)})
}

// webFrame is one frame of a grpc-web body.
type webFrame struct {
	flag byte
	data []byte
}

// grpcWebCall posts msg (one gRPC message) to method as a grpc-web call with c, text says
// application/grpc-web-text (the request body sent as chunks base64-encoded one by one, as
// some clients do), and returns the response and its body's frames.
func grpcWebCall(t *testing.T, c *http.Client, tg *testGateway, method string, msg proto.Message, text bool) (*http.Response, []webFrame) {
	t.Helper()
	m, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	body := webFrameBytes(0, string(m))
	ct := "application/grpc-web+proto"
	if text {
		ct = "application/grpc-web-text+proto"
		half := len(body)/2 + 1 // padded chunks, concatenated
		body = []byte(base64.StdEncoding.EncodeToString(body[:half]) + base64.StdEncoding.EncodeToString(body[half:]))
	}
	resp, raw, err := webPost(t, c, tg.url("/grpc.testing.TestService/"+method), ct, body)
	if err != nil {
		t.Fatal(err)
	}
	if text {
		if raw, err = base64.StdEncoding.DecodeString(string(raw)); err != nil {
			t.Fatalf("grpc-web-text response is not base64: %v", err)
		}
	}
	var frames []webFrame
	for len(raw) > 0 {
		if len(raw) < 5 || int(binary.BigEndian.Uint32(raw[1:5])) > len(raw)-5 {
			t.Fatalf("truncated grpc-web frame: % x", raw)
		}
		n := 5 + int(binary.BigEndian.Uint32(raw[1:5]))
		frames = append(frames, webFrame{raw[0], raw[5:n]})
		raw = raw[n:]
	}
	return resp, frames
}

// webPost posts body to url with c as a grpc-web call of content-type ct (with the header
// fields hdr, name and value pairs), and returns the response, its body read whole and the
// error that ended the read (nil: the body ended cleanly); a failed request fails t.
func webPost(t *testing.T, c *http.Client, url, ct string, body []byte, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Grpc-Web", "1")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return fetchReq(t, c, req)
}

// webFrameBytes is one grpc-web frame: flag (0 a message, 0x80 the trailers), the 4-byte
// length, p.
func webFrameBytes(flag byte, p string) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{flag}, uint32(len(p))), p...)
}

// webClients are the grpc-web tests' clients: "http1" (HTTP/1.1) and "h2c".
func webClients() map[string]*http.Client {
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	return map[string]*http.Client{"http1": newClient(), "h2c": {Transport: &http.Transport{Protocols: &h2c}}}
}

// TestGRPCWeb: grpc-web calls (application/grpc-web and -text, made by hand with an
// http.Client, over HTTP/1.1 and over h2c) reach a grpc-go server as gRPC through a grpc_web route, for a
// unary and a server-streaming call: the answer's content-type is grpc-web's, its message
// frames decode, and the gRPC trailers arrive as the last frame (flag 0x80, lower-case
// "grpc-status: 0"). An error status of the backend (trailers-only) reaches the client in
// the head. Each call's access log line has its grpc_status.
func TestGRPCWeb(t *testing.T) {
	tg := grpcWebGateway(t)
	clients := webClients()
	n := 0
	logged := func(t *testing.T, want float64) {
		t.Helper()
		n++
		if l := tg.accessLines(n)[n-1]; l["grpc_status"] != want {
			t.Errorf("access log: grpc_status %v; want %v", l["grpc_status"], want)
		}
	}
	for _, tc := range []struct {
		client string
		text   bool
	}{{"http1", false}, {"http1", true}, {"h2c", false}, {"h2c", true}} {
		c, text := clients[tc.client], tc.text
		name, wantCT := tc.client+"/binary", "application/grpc-web+proto"
		if text {
			name, wantCT = tc.client+"/text", "application/grpc-web-text+proto"
		}
		t.Run(name+"/unary", func(t *testing.T) {
			resp, frames := grpcWebCall(t, c, tg, "UnaryCall", &testgrpc.SimpleRequest{ResponseSize: 1000, Payload: payload(24)}, text)
			logged(t, 0)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != wantCT || len(resp.Trailer) != 0 {
				t.Fatalf("%d %q, trailers %v; want 200 %q and no HTTP trailers", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Trailer, wantCT)
			}
			if want := map[string]int{"http1": 1, "h2c": 2}[tc.client]; resp.ProtoMajor != want {
				t.Errorf("answered over HTTP/%d; want %d", resp.ProtoMajor, want)
			}
			if len(frames) != 2 || frames[0].flag != 0 || frames[1].flag != 0x80 {
				t.Fatalf("frames %v; want a message and the trailers", frames)
			}
			var r testgrpc.SimpleResponse
			if err := proto.Unmarshal(frames[0].data, &r); err != nil || len(r.GetPayload().GetBody()) != 1024 {
				t.Errorf("response message: %v, %d bytes; want 1024", err, len(r.GetPayload().GetBody()))
			}
			if tr := string(frames[1].data); !strings.Contains(tr, "grpc-status: 0\r\n") {
				t.Errorf("trailer frame %q; want grpc-status: 0", tr)
			}
		})
		t.Run(name+"/server-streaming", func(t *testing.T) {
			sizes := []int32{10, 2000, 70000}
			req := &testgrpc.StreamingOutputCallRequest{}
			for _, s := range sizes {
				req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: s})
			}
			resp, frames := grpcWebCall(t, c, tg, "StreamingOutputCall", req, text)
			logged(t, 0)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != wantCT || len(frames) != len(sizes)+1 {
				t.Fatalf("%d %q, %d frames; want 200 %q, %d frames", resp.StatusCode, resp.Header.Get("Content-Type"), len(frames), wantCT, len(sizes)+1)
			}
			for i, s := range sizes {
				var r testgrpc.StreamingOutputCallResponse
				if err := proto.Unmarshal(frames[i].data, &r); err != nil || frames[i].flag != 0 || len(r.GetPayload().GetBody()) != int(s) {
					t.Errorf("message %d: %v, %d bytes; want %d", i, err, len(r.GetPayload().GetBody()), s)
				}
			}
			if last := frames[len(sizes)]; last.flag != 0x80 || !strings.Contains(string(last.data), "grpc-status: 0\r\n") {
				t.Errorf("last frame %x %q; want the trailers with grpc-status: 0", last.flag, last.data)
			}
		})
		t.Run(name+"/error-status", func(t *testing.T) {
			resp, frames := grpcWebCall(t, c, tg, "UnaryCall", &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 5, Message: "no such thing"}}, text)
			logged(t, 5)
			got := resp.Header.Get("Grpc-Status")
			var tr string
			if len(frames) > 0 {
				tr = string(frames[len(frames)-1].data)
			}
			if resp.StatusCode != 200 || (got != "5" && !strings.Contains(tr, "grpc-status: 5\r\n")) {
				t.Errorf("%d, grpc-status %q, frames %v; want 200 and grpc-status 5", resp.StatusCode, got, frames)
			}
		})
	}
}

// TestGRPCWebRacyBackend: the promise holds for translated calls. grpc-web POSTs (binary and
// -text) go through a grpc_web route to an HTTP/2 backend that sends GOAWAY below streams in
// flight and refuses streams: none fails, each ran once, and every body the backend got
// (the -text ones decoded again for each re-send) was whole.
func TestGRPCWebRacyBackend(t *testing.T) {
	b, err := testutil.NewRacyH2(testutil.RacyH2Options{GoAwayEvery: 8, RefusePercent: 10, Delay: 2 * time.Millisecond, HeaderTableSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tg := startGateway(t, grpcWebYAML, map[string]string{"backend": b.Addr()})
	c := newClient()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				id := fmt.Sprintf("%d-%d", w, i)
				text := i%2 == 0
				body, ct := "body-"+id, "application/grpc-web"
				if text {
					body, ct = base64.StdEncoding.EncodeToString([]byte(body)), "application/grpc-web-text"
				}
				req, _ := http.NewRequest("POST", tg.url("/r"), strings.NewReader(body))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-Test-Id", id)
				resp, err := c.Do(req)
				if err != nil {
					t.Errorf("%s: %v", id, err)
					continue
				}
				// The backend's answer is not gRPC (no content-type): it passes as it is,
				// for -text too (TestGRPCWebNonGRPCAnswer).
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "ok "+id+" ") {
					t.Errorf("%s: %d %q (%s)", id, resp.StatusCode, got, resp.Header.Get("X-Sluice-Error"))
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if n := b.Processed(id); n != 1 {
			t.Errorf("%s processed %d times; want 1", id, n)
		}
	}
	if b.GoAways.Load() == 0 || b.Unprocessed.Load()+b.Refused.Load() == 0 {
		t.Errorf("the backend did not race: %d GOAWAYs, %d streams above them, %d refused", b.GoAways.Load(), b.Unprocessed.Load(), b.Refused.Load())
	}
	if n := b.BadBodies.Load(); n != 0 {
		t.Errorf("%d POST bodies arrived wrong", n)
	}
	t.Logf("%d calls; backend: %d GOAWAYs, %d streams above them, %d refused", len(ids), b.GoAways.Load(), b.Unprocessed.Load(), b.Refused.Load())
}
