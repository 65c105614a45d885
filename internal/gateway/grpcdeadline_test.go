package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"sluice/internal/testutil"
)

// deadlineBackend is a frame-level h2c gRPC backend (frameServer) that notes the
// grpc-timeout of every stream it is sent and the streams reset by the client, and answers
// each call whose body ended with an empty message and grpc-status 0, except: the first
// stream, which it refuses (RST_STREAM REFUSED_STREAM: not processed) hold after its body
// ended when refuse is set; and, when mute is set, every other stream (left unanswered).
type deadlineBackend struct {
	hold         time.Duration
	refuse, mute bool

	mu       sync.Mutex
	timeouts []string // each stream's grpc-timeout ("" when none, "a,b" when two), in arrival order
	resets   []string // "<stream id> <error code>" of each RST_STREAM the client sent
}

func (b *deadlineBackend) serve(c net.Conn) {
	var first uint32
	frameServer(c, func(fr *http2.Framer, head headWriter, f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			b.mu.Lock()
			v := ""
			for _, hf := range f.RegularFields() {
				if hf.Name != "grpc-timeout" {
					continue
				}
				if v != "" {
					v += "," // a second field, which gRPC does not allow
				}
				v += hf.Value
			}
			b.timeouts = append(b.timeouts, v)
			b.mu.Unlock()
			if first == 0 {
				first = f.StreamID
			}
		case *http2.RSTStreamFrame:
			b.mu.Lock()
			b.resets = append(b.resets, fmt.Sprintf("%d %v", f.StreamID, f.ErrCode))
			b.mu.Unlock()
		case *http2.DataFrame:
			switch {
			case !f.StreamEnded():
			case f.StreamID == first && b.refuse:
				time.Sleep(b.hold) // the backend's work before it refuses the stream
				return fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream) == nil
			case b.mute:
			default:
				return head(f.StreamID, false, ":status", "200", "content-type", "application/grpc") == nil &&
					fr.WriteData(f.StreamID, false, webMsg("")) == nil &&
					head(f.StreamID, true, "grpc-status", "0") == nil
			}
		}
		return true
	})
}

// seen is the grpc-timeout of every stream the backend was sent.
func (b *deadlineBackend) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.timeouts...)
}

// resetsSeen are the client's stream resets so far.
func (b *deadlineBackend) resetsSeen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.resets...)
}

// parseGRPCTimeout reads a grpc-timeout value (digits and a unit of H, M, S, m, u, n).
func parseGRPCTimeout(t *testing.T, v string) time.Duration {
	t.Helper()
	units := map[string]string{"H": "h", "M": "m", "S": "s", "m": "ms", "u": "us", "n": "ns"}
	if len(v) < 2 || len(v) > 9 || units[v[len(v)-1:]] == "" {
		t.Fatalf("grpc-timeout %q: not 1 to 8 digits and a unit", v)
	}
	d, err := time.ParseDuration(v[:len(v)-1] + units[v[len(v)-1:]])
	if err != nil || strings.ContainsAny(v[:len(v)-1], "+-.") {
		t.Fatalf("grpc-timeout %q: %v", v, err)
	}
	return d
}

// TestGRPCTimeoutLeftForEachAttempt: the grpc-timeout a backend is sent is what is left of
// the client's deadline, counted from the request's arrival: less the time the route's
// plugins took (a fault-injection delay) on the first attempt, and less the time the first
// attempt took on a re-send of a stream the backend refused (REFUSED_STREAM after 300 ms).
// Before, every attempt forwarded the client's value unchanged, and the gateway counted it
// from each attempt's start: a backend was told it had time the client would not wait.
func TestGRPCTimeoutLeftForEachAttempt(t *testing.T) {
	const delay, hold, deadline = 300 * time.Millisecond, 300 * time.Millisecond, 10 * time.Second
	be := &deadlineBackend{hold: hold, refuse: true}
	yaml := grpcGatewayYAML + `    plugins:
      - name: fault-injection
        config: {delay: {duration: 300ms}}
`
	tg := startGateway(t, yaml, map[string]string{"backend": serveConns(t, be.serve)})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := grpcClient(t, tg).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	seen := be.seen()
	if len(seen) != 2 {
		t.Fatalf("the backend was sent %d streams (grpc-timeout %q); want 2 (refused, re-sent)", len(seen), seen)
	}
	first, second := parseGRPCTimeout(t, seen[0]), parseGRPCTimeout(t, seen[1])
	if first > deadline-delay {
		t.Errorf("first attempt's grpc-timeout %s (%v); want at most the client's %v less the plugin's %v", seen[0], first, deadline, delay)
	}
	if second <= 0 || second > first-hold {
		t.Errorf("re-send's grpc-timeout %s (%v); want at most the first's %v less the %v the first attempt took", seen[1], second, first, hold)
	}
}

// grpcCall makes a gRPC unary call with a raw HTTP/2 client (h2c) and the grpc-timeout
// field timeout, which the client does not keep itself (the gateway's answer is waited
// for, up to 20 s), and returns the call's grpc-status and grpc-message.
func grpcCall(t *testing.T, tg *testGateway, timeout string) (status, message string) {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", tg.url("/grpc.testing.TestService/UnaryCall"), bytes.NewReader(webMsg("")))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("Grpc-Timeout", timeout)
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if s := resp.Header.Get("Grpc-Status"); s != "" { // trailers-only: the gateway's answer
		return s, resp.Header.Get("Grpc-Message")
	}
	return resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
}

// TestGRPCDeadlineStopsAttempts: once a call's grpc-timeout has run out, no attempt starts
// and the client is answered DEADLINE_EXCEEDED (4), upstream_timeout, whatever the attempt
// was waiting for when it ran out: a target's TLS handshake (before: UNAVAILABLE
// upstream_tls_handshake, "safe to retry", and a retry went to the next target with the
// client's whole grpc-timeout), the backoff before a retry (before: up to backoff_max past
// the deadline, then sent), or nothing at all (1n: before, an attempt that timed out at
// once). A retry is not even decided (the access log's retried_on).
func TestGRPCDeadlineStopsAttempts(t *testing.T) {
	ca := testutil.NewCA(t)
	silent := serveConns(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers the ClientHello
	cases := []struct {
		name    string
		targets string // {{good}} is a backend that answers every call
		retry   string // the upstream's retry settings, "" for the defaults
		timeout string
		tries   int // attempts in the access log
	}{
		{name: "tls handshake", targets: `{address: "https://` + silent + `"}`, timeout: "300m", tries: 1},
		{name: "tls handshake, no retries", targets: `{address: "https://` + silent + `"}`, retry: "    retry: {attempts: 1}\n", timeout: "300m", tries: 1},
		{name: "tls handshake, then a good target", targets: `{address: "https://` + silent + `", weight: 2}, {address: "https://{{good}}"}`, timeout: "300m", tries: 1},
		{name: "backoff", targets: `{address: "https://` + testutil.RefusingAddr(t) + `", weight: 2}, {address: "https://{{good}}"}`,
			retry: "    retry: {backoff_base: 1h, backoff_max: 1h}\n", timeout: "300m", tries: 1},
		{name: "nothing left", targets: `{address: "https://{{good}}"}`, timeout: "1n", tries: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := &deadlineBackend{}
			cfg := ca.ServerConfig(t, "127.0.0.1")
			cfg.NextProtos = []string{http2.NextProtoTLS}
			addr := serveConns(t, func(c net.Conn) {
				if sc := tls.Server(c, cfg); sc.Handshake() == nil {
					good.serve(sc)
				}
			})
			yaml := strings.Replace(grpcGatewayYAML, `[{address: "{{backend}}"}]`, "["+tc.targets+"]", 1)
			yaml = strings.Replace(yaml, "    protocol: h2c\n", "    protocol: h2\n    tls: {ca_file: "+ca.CAFile(t)+"}\n"+tc.retry, 1)
			tg := startGateway(t, yaml, map[string]string{"good": addr})
			status, msg := grpcCall(t, tg, tc.timeout)
			if status != "4" || !strings.HasPrefix(msg, "upstream_timeout") {
				t.Errorf("grpc-status %q grpc-message %q; want 4 upstream_timeout", status, msg)
			}
			if seen := good.seen(); len(seen) != 0 {
				t.Errorf("the good target was sent %d calls (grpc-timeout %q) after the deadline", len(seen), seen)
			}
			line := tg.accessLines(1)[0]
			tries, _ := line["tries"].([]any)
			if len(tries) != tc.tries {
				t.Fatalf("access log tries %v; want %d attempts", line["tries"], tc.tries)
			}
			if len(tries) > 0 && tries[0].(map[string]any)["retried_on"] != nil {
				t.Errorf("access log tries %v: a retry was decided after the deadline", tries)
			}
		})
	}
}

// TestGRPCCancelDuringResend: a gRPC client that cancels its call while the gateway's
// re-send of a refused stream is upstream (RST_STREAM CANCEL to the gateway) has that
// stream reset upstream (CANCEL), and nothing is sent again.
func TestGRPCCancelDuringResend(t *testing.T) {
	be := &deadlineBackend{refuse: true, mute: true}
	tg := startGateway(t, grpcGatewayYAML, map[string]string{"backend": serveConns(t, be.serve)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := grpcClient(t, tg).UnaryCall(cctx, &testgrpc.SimpleRequest{})
		done <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "the re-sent stream upstream", func() bool { return len(be.seen()) == 2 })
	ccancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("UnaryCall: %v; want Canceled", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the re-sent stream reset upstream", func() bool { return len(be.resetsSeen()) > 0 })
	if r := be.resetsSeen(); len(r) != 1 || !strings.HasSuffix(r[0], " CANCEL") {
		t.Errorf("upstream resets %q; want one, CANCEL (the re-sent stream)", r)
	}
	line := tg.accessLines(1)[0]
	if tries, _ := line["tries"].([]any); line["status"] != 499.0 || len(tries) != 2 {
		t.Errorf("access log status %v reason %v tries %v; want 499 after 2 attempts", line["status"], line["reason"], line["tries"])
	}
	if n := len(be.seen()); n != 2 {
		t.Errorf("the backend was sent %d streams; want 2 (nothing after the cancel)", n)
	}
}

// TestGRPCTimeoutRouteRewrite: a grpc-timeout field the route's rewrite sets or adds goes to
// the backend as the operator wrote it, alone (an added one was dropped for what was left of
// the client's deadline), and one the route removes is not put back; only the
// client's own field is replaced by what is left of its deadline. Before, every attempt
// wrote what was left of the client's deadline over the operator's value.
func TestGRPCTimeoutRouteRewrite(t *testing.T) {
	for _, tc := range []struct {
		name, rewrite, want string
	}{
		{name: "set", rewrite: `{set_headers: {Grpc-Timeout: 7S}}`, want: "7S"},
		{name: "removed", rewrite: `{remove_headers: [Grpc-Timeout]}`, want: ""},
		{name: "added", rewrite: `{add_headers: {Grpc-Timeout: 7S}}`, want: "7S"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &deadlineBackend{}
			tg := startGateway(t, grpcGatewayYAML+"    rewrite: "+tc.rewrite+"\n", map[string]string{"backend": serveConns(t, be.serve)})
			if st, msg := grpcCall(t, tg, "10S"); st != "0" {
				t.Fatalf("grpc-status %q (%s), want 0", st, msg)
			}
			if seen := be.seen(); len(seen) != 1 || seen[0] != tc.want {
				t.Errorf("the backend was sent grpc-timeout %q, want [%q]", seen, tc.want)
			}
		})
	}
}
