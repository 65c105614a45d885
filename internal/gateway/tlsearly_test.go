package gateway

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTLSEarlyResponseWhileTheClientPauses: an HTTP/1.1 client over TLS (1.2 and 1.3) sends
// a request head and the start of its body, and pauses; the backend answers 401 before
// reading the body and stops reading, or 413 and closes. The answer reaches the client at
// once, as over plain TCP and HTTP/2 (the waits for the client's next record are watched,
// server.Exchange.WatchBody), not when the listener's read_timeout (60 s) or the client's
// own 10 s ends the wait; the request is not sent again (a final answer means it was
// processed). The body bytes the client then sends are read and dropped: the connection
// ends with the gateway's close_notify, not a reset.
func TestTLSEarlyResponseWhileTheClientPauses(t *testing.T) {
	cases := []struct {
		name    string
		reply   string
		hold    bool
		chunked bool
		want    string // the answer after "HTTP/1.1 "
	}{
		{
			name:  "401 and stop reading",
			reply: "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope",
			hold:  true,
			want:  "401 Unauthorized\r\nX-Request-Id: %s\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
		},
		{
			name:    "401 and stop reading, chunked body",
			reply:   "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope",
			hold:    true,
			chunked: true,
			want:    "401 Unauthorized\r\nX-Request-Id: %s\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
		},
		{
			name:  "413 and close",
			reply: "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
			want:  "413 Payload Too Large\r\nX-Request-Id: %s\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
		},
	}
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test"}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, heads, conns := earlyBackend(t, tc.reply, tc.hold)
			// timeouts far above the test's bound: the answer must not wait for them
			tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b, timeouts: {read: 30s, write: 30s}}]
`, map[string]string{"b": be, "c": cert, "k": key})
			for i, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				id := "tls-early-" + strconv.Itoa(i)
				cfg := ca.ClientConfig("site.test")
				cfg.MinVersion, cfg.MaxVersion, cfg.NextProtos = version, version, []string{"http/1.1"}
				out, took := pausedTLSUpload(t, tg.addr, cfg, id, tc.chunked)
				wantBytes(t, "client got", out, "HTTP/1.1 "+strings.Replace(tc.want, "%s", id, 1))
				if took > 5*time.Second {
					t.Errorf("TLS %x: the answer took %v", version, took)
				}
				if head := received(t, heads); !strings.HasPrefix(head, "PUT /up HTTP/1.1\r\n") {
					t.Errorf("backend read %q", head)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("backend saw %d connections for 2 requests: an early answer was retried", n)
			}
			for _, l := range tg.accessLines(2) {
				wantFields(t, l, map[string]any{"early_response": true, "reason": nil, "attempts": 1})
			}
		})
	}
}

// pausedTLSUpload sends, over a new TLS connection with cfg, a PUT whose body has 1 MiB (a
// Content-Length, or chunks) of which it sends the first bytes and then waits for the answer.
// Then it sends the rest and reads until the gateway ends the connection. It returns the
// answer and the bytes after it, and how long the answer took.
func pausedTLSUpload(t *testing.T, addr string, cfg *tls.Config, id string, chunked bool) (string, time.Duration) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 1 << 20 // above retry.buffer_body: the head goes upstream before the body is in
	head := "PUT /up HTTP/1.1\r\nHost: h\r\nX-Request-Id: " + id + "\r\n"
	first, rest := "abc", strings.Repeat("u", size-3)
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
		first, rest = "3\r\nabc\r\n", strconv.FormatInt(size-3, 16)+"\r\n"+rest+"\r\n0\r\n\r\n"
	} else {
		head += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	}
	start := time.Now()
	if _, err := io.WriteString(c, head+first); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the client's own timeout
	var answer strings.Builder
	br := bufio.NewReader(io.TeeReader(c, &answer))
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	took := time.Since(start)
	if err != nil {
		t.Fatalf("reading the answer: %v after %v (%q)", err, took, answer.String())
	}
	if _, err := io.WriteString(c, rest); err != nil {
		t.Errorf("sending the rest of the body after the answer: %v", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Errorf("after the answer: %v", err)
	}
	return answer.String(), took
}
