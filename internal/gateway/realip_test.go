package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"sluice/internal/proxyproto"
	"sluice/internal/testutil"
)

// TestRealClientIP: a listener that trusts no proxy forwards no X-Forwarded-For of the
// client's (a spoof); one that trusts the peer takes the client from X-Forwarded-For, right
// to left past trusted hops, forwards only the vouched-for part plus the peer, and
// ip-restriction, the access log and the balancer see that client.
func TestRealClientIP(t *testing.T) {
	be := echoBackend(t, "b")
	const cfg = `
listeners:
  - name: edge
    address: 127.0.0.1:0
    trusted_proxies: [{{trusted}}]
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
routes:
  - id: all
    upstream: echo
    plugins:
      - name: ip-restriction
        config: {deny: [192.0.2.0/24, "2001:db8:bad::/48"]}
`
	cases := []struct {
		name     string
		trusted  string
		xff      []string
		status   int
		client   string // access log client_ip
		upstream string // X-Forwarded-For the backend saw
	}{
		{name: "untrusted peer: XFF dropped", trusted: "10.0.0.0/8", xff: []string{"198.51.100.7"}, status: 200, client: "127.0.0.1", upstream: "127.0.0.1"},
		{name: "untrusted peer cannot dodge a deny list", trusted: "10.0.0.0/8", xff: []string{"203.0.113.1"}, status: 200, client: "127.0.0.1", upstream: "127.0.0.1"},
		{name: "trusted peer: client from XFF", trusted: "127.0.0.1", xff: []string{"198.51.100.7"}, status: 200, client: "198.51.100.7", upstream: "198.51.100.7, 127.0.0.1"},
		{name: "trusted hops skipped", trusted: "127.0.0.1, 10.0.0.0/8", xff: []string{"198.51.100.7, 10.1.2.3", "10.9.9.9"}, status: 200, client: "198.51.100.7", upstream: "198.51.100.7, 10.1.2.3, 10.9.9.9, 127.0.0.1"},
		{name: "spoofed left part dropped", trusted: "127.0.0.1", xff: []string{"192.0.2.66, 198.51.100.7"}, status: 200, client: "198.51.100.7", upstream: "198.51.100.7, 127.0.0.1"},
		{name: "denied real client", trusted: "127.0.0.1", xff: []string{"192.0.2.66"}, status: 403, client: "192.0.2.66"},
		{name: "denied v6 client", trusted: "127.0.0.1", xff: []string{"[2001:db8:bad::1]:5555"}, status: 403, client: "2001:db8:bad::1"},
		{name: "garbage ends the walk", trusted: "127.0.0.1, 10.0.0.0/8", xff: []string{"192.0.2.66, evil, 10.1.2.3"}, status: 200, client: "10.1.2.3", upstream: "10.1.2.3, 127.0.0.1"},
		{name: "no XFF from a trusted peer", trusted: "127.0.0.1", status: 200, client: "127.0.0.1", upstream: "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, cfg, map[string]string{"backend": hostport(be), "trusted": tc.trusted})
			var h []string
			for _, v := range tc.xff {
				h = append(h, "X-Forwarded-For", v)
			}
			resp, body := send(t, newClient(), "GET", tg.url("/x"), h...)
			if tc.status == 403 {
				wantAnswer(t, resp, 403, "ip_forbidden")
			} else {
				mustStatus(t, resp, tc.status)
				var info echoInfo
				json.Unmarshal([]byte(body), &info)
				if got := strings.Join(info.Header["X-Forwarded-For"], " | "); got != tc.upstream {
					t.Errorf("upstream X-Forwarded-For = %q, want %q", got, tc.upstream)
				}
			}
			if got := tg.accessLines(1)[0]["client_ip"]; got != tc.client {
				t.Errorf("access log client_ip = %v, want %s", got, tc.client)
			}
		})
	}
}

const proxyProtoConfig = `
listeners:
  - name: behind-lb
    address: 127.0.0.1:0
    proxy_protocol: true
    trusted_proxies: [{{trusted}}]
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
routes:
  - id: all
    upstream: echo
    plugins:
      - name: ip-restriction
        config: {deny: [192.0.2.0/24]}
`

// TestProxyProtocol: on a proxy_protocol listener, a trusted peer's v1 and v2 headers name
// the client (access log, X-Forwarded-For, ip-restriction), whose own X-Forwarded-For is
// not believed; a LOCAL header keeps the peer; a
// malformed or missing header closes the connection with nothing written, is counted, and
// the gateway goes on serving; an untrusted peer's PROXY line is just a bad HTTP request.
func TestProxyProtocol(t *testing.T) {
	be := echoBackend(t, "b")
	dst := netip.MustParseAddrPort("10.0.0.1:443")
	v4 := netip.MustParseAddrPort("198.51.100.7:51000")
	v6 := netip.MustParseAddrPort("[2001:db8::7]:51000")
	denied := netip.MustParseAddrPort("192.0.2.9:1234")
	get := "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.50\r\nConnection: close\r\n\r\n"
	v2local := []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
	cases := []struct {
		name    string
		trusted string
		preface []byte
		status  int // 0: the connection closes with nothing written
		client  string
		xff     string
	}{
		{name: "v1", trusted: "127.0.0.1", preface: proxyproto.AppendV1(nil, v4, dst), status: 200, client: "198.51.100.7", xff: "198.51.100.7"},
		{name: "v2 v4", trusted: "127.0.0.1", preface: proxyproto.AppendV2(nil, v4, dst), status: 200, client: "198.51.100.7", xff: "198.51.100.7"},
		{name: "v2 v6", trusted: "127.0.0.1", preface: proxyproto.AppendV2(nil, v6, netip.MustParseAddrPort("[2001:db8::1]:443")), status: 200, client: "2001:db8::7", xff: "2001:db8::7"},
		// LOCAL: the trusted proxy speaks for itself, so its X-Forwarded-For is believed.
		{name: "v2 local", trusted: "127.0.0.1", preface: v2local, status: 200, client: "203.0.113.50", xff: "203.0.113.50, 127.0.0.1"},
		{name: "v2 denied client", trusted: "127.0.0.1", preface: proxyproto.AppendV2(nil, denied, dst), status: 403, client: "192.0.2.9"},
		{name: "malformed v1", trusted: "127.0.0.1", preface: []byte("PROXY TCP4 1.2.3.4 nope 1 2\r\n")},
		{name: "malformed v2", trusted: "127.0.0.1", preface: []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd")},
		{name: "missing", trusted: "127.0.0.1"},
		{name: "untrusted peer", trusted: "10.0.0.0/8", preface: proxyproto.AppendV1(nil, v4, dst), status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, proxyProtoConfig, map[string]string{"backend": hostport(be), "trusted": tc.trusted})
			out := rawExchange(t, tg.addr, string(tc.preface)+get, 5*time.Second)
			if tc.status == 0 {
				if out != "" {
					t.Fatalf("got %q, want the connection closed with nothing written", out)
				}
				if n := gathered(t, tg)["sluice_proxy_protocol_refused_total"].GetMetric()[0].GetCounter().GetValue(); n != 1 {
					t.Errorf("sluice_proxy_protocol_refused_total = %v, want 1", n)
				}
				// The gateway still serves a well-formed connection.
				out = rawExchange(t, tg.addr, string(proxyproto.AppendV1(nil, v4, dst))+get, 5*time.Second)
				if !strings.HasPrefix(out, "HTTP/1.1 200") {
					t.Fatalf("after a refused header, a good connection got %q", out)
				}
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("response %q: %v", out, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				var info echoInfo
				json.Unmarshal(body, &info)
				if got := strings.Join(info.Header["X-Forwarded-For"], " | "); got != tc.xff {
					t.Errorf("upstream X-Forwarded-For = %q, want %q", got, tc.xff)
				}
			}
			if tc.client != "" {
				if got := tg.accessLines(1)[0]["client_ip"]; got != tc.client {
					t.Errorf("access log client_ip = %v, want %s", got, tc.client)
				}
			}
		})
	}
}

// TestProxyProtocolSlowHeader: a trusted peer that sends no header is closed after the
// listener's read_header_timeout, not held.
func TestProxyProtocolSlowHeader(t *testing.T) {
	be := echoBackend(t, "b")
	cfg := strings.Replace(proxyProtoConfig, "proxy_protocol: true", "proxy_protocol: true\n    read_header_timeout: 300ms", 1)
	tg := startGateway(t, cfg, map[string]string{"backend": hostport(be), "trusted": "127.0.0.1"})
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PROXY TCP4 1.2.3.4 ")) // and nothing more
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("read %d, %v after %v: want the connection closed after ~300ms", n, err, time.Since(start))
	}
}

// TestProxyProtocolTLS: on a TLS listener the PROXY header comes first, in the clear, and
// the TLS handshake follows it on the same connection.
func TestProxyProtocolTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}
    proxy_protocol: true
    trusted_proxies: [127.0.0.1]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"c": cert, "k": key, "b": hostport(echoBackend(t, "a"))})
	raw, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	if _, err := raw.Write(proxyproto.AppendV2(nil, src, netip.MustParseAddrPort("10.0.0.1:443"))); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, ca.ClientConfig("a.test"))
	io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	var info echoInfo
	json.Unmarshal(body, &info)
	if resp.StatusCode != 200 || strings.Join(info.Header["X-Forwarded-For"], ",") != "198.51.100.7" {
		t.Fatalf("status %d, X-Forwarded-For %q", resp.StatusCode, info.Header["X-Forwarded-For"])
	}
}
