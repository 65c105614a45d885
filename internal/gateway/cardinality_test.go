package gateway

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// upgradeAnyBackend answers every upgrade request 101 with the protocol it asked for (and,
// as a WebSocket server does, the Sec-WebSocket-Accept that answers its key: the gateway
// opens no tunnel without it), then holds the tunnel until the gateway closes it.
func upgradeAnyBackend(t *testing.T) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) // RFC 6455 §4.2.2
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			req.Header.Get("Upgrade"), base64.StdEncoding.EncodeToString(sum[:]))
		io.Copy(io.Discard, br)
	})
}

// TestClientValuesNeverLabels: what a client chooses on the edge paths (its SNI, ALPN
// offer, Host and :authority, path and gRPC method, User-Agent, the Upgrade protocol's
// version, Sec-WebSocket-Protocol) never becomes a metric label value or a key of the admin
// API's traffic maps, so that a client cannot grow the process's memory and the scrape
// without bound: after rounds of distinct marked values none is in the exposition or in
// /admin/traffic, and the number of series stays where a few rounds left it. Labels hold
// configured names (listener, route, upstream) and fixed words (versions, reasons).
func TestClientValuesNeverLabels(t *testing.T) {
	ca := testutil.NewCA(t)
	crt, key := ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test", "*.site.test"}})
	tg := startGateway(t, `
admin: {address: 127.0.0.1:0}
listeners:
  - address: 127.0.0.1:0
    name: edge
    protocols: [http1, h2]
    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], unknown_sni: reject}
upstreams:
  - {id: echo, targets: [{address: {{echo}}}]}
  - {id: tunnels, targets: [{address: {{up}}}]}
routes:
  - {id: api, match: {path_prefix: /api/}, upstream: echo}
  - {id: ws, match: {path_prefix: /ws}, upstream: tunnels}
`, map[string]string{"c": crt, "k": key, "echo": hostport(echoBackend(t, "a")), "up": upgradeAnyBackend(t)})

	var p http.Protocols
	p.SetHTTP2(true)
	h2 := &http.Transport{Protocols: &p, TLSClientConfig: ca.ClientConfig("site.test")}
	defer h2.CloseIdleConnections()
	round := func(i int) {
		mark := fmt.Sprintf("zq%d", i)
		// A handshake with a served name and an ALPN offer of the client's own, and one
		// with a name no certificate covers (unknown_sni).
		for _, sni := range []string{mark + ".site.test", mark + ".other.test"} {
			cfg := ca.ClientConfig(sni)
			cfg.NextProtos = []string{mark, "http/1.1"}
			if c, err := tls.Dial("tcp", tg.addr, cfg); err == nil {
				c.Close()
			}
		}
		// HTTP/2 requests: routed and not, gRPC and not.
		for _, path := range []string{"/api/" + mark, "/" + mark + ".Service/" + mark} {
			req, _ := http.NewRequest("POST", "https://"+tg.addr+path, strings.NewReader("x"))
			req.Host = mark + ".site.test"
			req.Header.Set("User-Agent", mark)
			req.Header.Set("Content-Type", "application/grpc")
			if resp, err := h2.RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		// A tunnel with the client's own protocol version and subprotocol.
		c, err := tls.Dial("tcp", tg.addr, ca.ClientConfig("site.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		key := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%-16s", mark)) // 16 bytes, a value of its own
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s.site.test\r\nConnection: Upgrade\r\nUpgrade: WebSocket/%s\r\n"+
			"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: %s\r\nUser-Agent: %s\r\n\r\n", mark, mark, key, mark, mark)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if st, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(st, " 101 ") {
			t.Fatalf("upgrade %s: %q %v", mark, st, err)
		}
	}
	series := func() (int, string) {
		t.Helper()
		// Every tunnel closed: its close is counted, and the open gauge is back at 0.
		testutil.WaitFor(t, 5*time.Second, "the tunnels closed", func() bool {
			return len(tg.gw.proxy.Tunnels()) == 0
		})
		f, text := scrape(t, tg.adminURL("/metrics"))
		n := 0
		for _, mf := range f {
			n += len(mf.GetMetric())
		}
		return n, text
	}
	for i := range 3 {
		round(i)
	}
	before, _ := series()
	for i := 3; i < 60; i++ {
		round(i)
	}
	after, text := series()
	f, _ := scrape(t, tg.adminURL("/metrics"))
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"sluice_tls_handshake_errors_total", map[string]string{"reason": "unknown_sni"}},
		{"sluice_gateway_errors_total", map[string]string{"reason": "no_route"}},
		{"sluice_tunnels_closed_total", map[string]string{"route": "ws"}},
	} {
		v := 0.0 // over the series that match (a tunnel's close reason varies)
		for _, m := range f[c.name].GetMetric() {
			if hasLabels(m, c.labels) {
				v += m.GetCounter().GetValue()
			}
		}
		if v < 60 {
			t.Errorf("%s%v = %v, want 60: the rounds did not run as meant", c.name, c.labels, v)
		}
	}
	if strings.Contains(text, "zq") {
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(l, "zq") {
				t.Errorf("a client's value in a series: %s", l)
			}
		}
	}
	// Bounded enumerations (a tunnel's close reason, a reason code) may add a series or
	// two late; a label of client values would add one per round.
	if after > before+5 {
		t.Errorf("series: %d after 3 rounds, %d after 60", before, after)
	}
	resp := get(t, &http.Client{Timeout: 5 * time.Second}, tg.adminURL("/admin/traffic"))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "zq") {
		t.Errorf("/admin/traffic holds a client's value: %s", body)
	}
}
