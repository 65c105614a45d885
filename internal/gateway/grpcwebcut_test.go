package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// cutBackend is an h2c gRPC backend written with x/net's Framer: to each request (once its
// END_STREAM came) it answers a 200 application/grpc+proto head and one DATA frame, body(path),
// then breaks the stream: RST_STREAM INTERNAL_ERROR, or, for a path ending in "/close",
// the connection closes; for one ending in "/stall" the stream stays open and nothing more
// comes. For "/short" the head's content-length promises 10 bytes more than the DATA frame
// it ends with (a malformed response); for "/even" a HEADERS frame on stream 2 follows (a
// server-initiated stream: the client refused push), and for "/even-first" it comes in
// place of the answer. It answers SETTINGS and PINGs.
func cutBackend(t *testing.T, body func(path string) []byte) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) { serveCut(c, body) })
}

func serveCut(c net.Conn, body func(path string) []byte) {
	paths := map[uint32]string{}
	frameServer(c, func(fr *http2.Framer, head headWriter, f http2.Frame) bool {
		answer := func(id uint32) bool {
			path := paths[id]
			msg := body(path)
			if strings.HasSuffix(path, "/even-first") {
				return head(2, true, ":status", "200") == nil
			}
			kv := []string{":status", "200", "content-type", "application/grpc+proto"}
			short := strings.HasSuffix(path, "/short")
			if short {
				kv = append(kv, "content-length", strconv.Itoa(len(msg)+10))
			}
			if head(id, false, kv...) != nil || fr.WriteData(id, short, msg) != nil {
				return false
			}
			switch {
			case strings.HasSuffix(path, "/close"):
				return false
			case strings.HasSuffix(path, "/stall"):
				return true // the stream stays open, silent
			case short:
				return true // ended, short of its length
			case strings.HasSuffix(path, "/even"):
				return head(2, true, ":status", "200") == nil
			}
			return fr.WriteRSTStream(id, http2.ErrCodeInternal) == nil
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			paths[f.StreamID] = f.PseudoValue("path")
			if f.StreamEnded() {
				return answer(f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return answer(f.StreamID)
			}
		}
		return true
	})
}

// headWriter writes a HEADERS frame on stream id holding the fields kv (name, value, ...),
// ending the stream when end.
type headWriter func(id uint32, end bool, kv ...string) error

// frameServer speaks HTTP/2 on c at the frame level (x/net's Framer) for a test backend: it
// reads the client preface, sends its SETTINGS, answers SETTINGS and PINGs, and hands every
// other frame to handle, with a headWriter; it returns when handle returns false or the
// connection fails.
func frameServer(c net.Conn, handle func(fr *http2.Framer, head headWriter, f http2.Frame) bool) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	head := func(id uint32, end bool, kv ...string) error {
		hb.Reset()
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: end})
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		ok := true
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				ok = fr.WriteSettingsAck() == nil
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				ok = fr.WritePing(true, f.Data) == nil
			}
		default:
			ok = handle(fr, head, f)
		}
		if !ok {
			return
		}
	}
}

// webMsg is one grpc-web message frame holding p.
func webMsg(p string) []byte { return webFrameBytes(0, p) }

// TestGRPCWebCutMidBody: a gRPC backend (frame-level, x/net Framer) answers a head and one
// whole message, then resets the stream or closes its connection. A grpc-web client
// (application/grpc-web+proto and -text, over HTTP/1.1 and h2c) gets a complete answer:
// the message, then a trailer frame (flag 0x80) the gateway made, "grpc-status: 2"
// (UNKNOWN: the backend processed the call, so not UNAVAILABLE) and "grpc-message:
// upstream_reset_during_response", and the body ends cleanly (no read error). When the backend cuts
// inside a message (a header promising 100 bytes, 10 sent), no frame can follow: the
// response is broken off as before (HTTP/1.1: the chunked body ends without its last
// chunk; h2c: the stream is reset), and no trailer frame appears. Every case is logged and
// counted as upstream_reset_during_response, as the HTTP/1.1 path names a cut (issue #16). A call whose grpc-timeout runs out after its first
// message ends with grpc-status 4 (DEADLINE_EXCEEDED), upstream_timeout.
func TestGRPCWebCutMidBody(t *testing.T) {
	partial := append(binary.BigEndian.AppendUint32([]byte{0}, 100), "0123456789"...) // 100 bytes announced
	backend := cutBackend(t, func(path string) []byte {
		if strings.Contains(path, "/Partial") {
			return partial
		}
		return webMsg("hello")
	})
	tg := startGateway(t, grpcWebYAML+"admin: {address: \"127.0.0.1:0\"}\n", map[string]string{"backend": backend})
	clients := webClients()
	trailer := "grpc-status: 2\r\ngrpc-message: upstream_reset_during_response\r\n"
	n := 0
	for _, client := range []string{"http1", "h2c"} {
		for _, text := range []bool{false, true} {
			for _, path := range []string{"/cut.Service/Whole/rst", "/cut.Service/Whole/close", "/cut.Service/Partial/rst", "/cut.Service/Partial/close"} {
				name := client + "/binary" + path
				ct := "application/grpc-web+proto"
				body := webMsg("request")
				if text {
					name = client + "/text" + path
					ct = "application/grpc-web-text+proto"
					body = []byte(base64.StdEncoding.EncodeToString(body))
				}
				t.Run(name, func(t *testing.T) {
					resp, raw, rerr := webPost(t, clients[client], tg.url(path), ct, body)
					n++
					if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct {
						t.Fatalf("got %d %q; want 200 %q", resp.StatusCode, resp.Header.Get("Content-Type"), ct)
					}
					if text {
						// What came is whole base64 groups (the encoder cuts in 3-byte groups).
						dec, err := base64.StdEncoding.DecodeString(string(raw))
						if err != nil {
							t.Fatalf("-text body %q is not base64: %v", raw, err)
						}
						raw = dec
					}
					if strings.Contains(path, "/Whole") {
						want := append(webMsg("hello"), webFrameBytes(0x80, trailer)...)
						if rerr != nil || !bytes.Equal(raw, want) {
							t.Fatalf("body % x (read error %v); want the message and the gateway's trailer frame % x, no error", raw, rerr, want)
						}
					} else {
						if rerr == nil {
							t.Errorf("a body cut inside a message ended cleanly; want a read error (connection closed or stream reset)")
						}
						if !bytes.HasPrefix(partial, raw) || bytes.Contains(raw, []byte("grpc-status")) {
							t.Errorf("body % x; want a prefix of % x, no trailer frame", raw, partial)
						}
					}
					l := tg.accessLines(n)[n-1]
					if l["reason"] != "upstream_reset_during_response" || l["path"] != path {
						t.Errorf("access log: reason %v path %v; want upstream_reset_during_response %s", l["reason"], l["path"], path)
					}
				})
			}
		}
	}
	// The call's grpc-timeout runs out after the first message: the trailer frame says
	// DEADLINE_EXCEEDED (upstream_timeout), as the gateway's trailers-only timeout does.
	for _, client := range []string{"http1", "h2c"} {
		t.Run(client+"/grpc-timeout", func(t *testing.T) {
			_, raw, rerr := webPost(t, clients[client], tg.url("/cut.Service/Whole/stall"), "application/grpc-web+proto", webMsg("request"), "Grpc-Timeout", "300m")
			n++
			want := append(webMsg("hello"), webFrameBytes(0x80, "grpc-status: 4\r\ngrpc-message: upstream_timeout\r\n")...)
			if rerr != nil || !bytes.Equal(raw, want) {
				t.Fatalf("body %q (read error %v); want %q", raw, rerr, want)
			}
			if l := tg.accessLines(n)[n-1]; l["reason"] != "upstream_timeout" {
				t.Errorf("access log reason %v; want upstream_timeout", l["reason"])
			}
		})
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	for code, want := range map[string]int{"upstream_reset_during_response": n - 2, "upstream_timeout": 2} {
		if v, _ := f.value("sluice_gateway_errors_total", map[string]string{"reason": code}); v != float64(want) {
			t.Errorf("sluice_gateway_errors_total{reason=%s} = %v; want %d", code, v, want)
		}
	}
}
