package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestACMEALPNOnlyForChallenges: on a listener with certificate files and an acme block,
// only a handshake that offers acme-tls/1 and nothing else goes to the ACME side as a
// validation (RFC 8737 §3): with no challenge pending it fails, and never gets the file
// certificate. A client that offers acme-tls/1 among other protocols is an ordinary one and
// gets its name's certificate and its other protocol; one that ends up on acme-tls/1
// anyway is served nothing. A name whose certificate the CA (unreachable here) has not
// issued gets a prompt handshake failure.
func TestACMEALPNOnlyForChallenges(t *testing.T) {
	tg := startWithoutCA(t, testLogger(t))
	const fail, served, silent = "fail", "served", "silent"
	for _, tc := range []struct {
		name, sni string
		protos    []string
		want      string // fail: the handshake fails; served: a.test's certificate and HTTP/1.1; silent: no response
	}{
		{"acme-tls/1 second", "a.test", []string{"http/1.1", "acme-tls/1"}, served},
		{"acme-tls/1 second, no SNI", "", []string{"http/1.1", "acme-tls/1"}, served},
		{"acme-tls/1 alone, no challenge", "a.test", []string{"acme-tls/1"}, fail},
		{"acme-tls/1 alone, no SNI", "", []string{"acme-tls/1"}, fail},
		{"acme-tls/1 and an unknown protocol", "a.test", []string{"acme-tls/1", "foo/1"}, silent},
		{"ACME name not issued yet", "acme.test", []string{"http/1.1"}, fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, err := tls.Dial("tcp", tg.addr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true, NextProtos: tc.protos})
			if tc.want == fail {
				if err == nil {
					c.Close()
					t.Fatalf("handshake succeeded, want it to fail")
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the handshake took %v to fail", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			st := c.ConnectionState()
			if !slices.Equal(st.PeerCertificates[0].DNSNames, []string{"a.test"}) {
				t.Errorf("certificate for %q", st.PeerCertificates[0].DNSNames)
			}
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
			out, _ := io.ReadAll(c)
			switch tc.want {
			case served:
				if st.NegotiatedProtocol != "http/1.1" || len(out) < 12 || string(out[:12]) != "HTTP/1.1 200" {
					t.Errorf("protocol %q, answer %q; want http/1.1 and 200", st.NegotiatedProtocol, firstLine(string(out)))
				}
			case silent:
				if len(out) != 0 {
					t.Errorf("protocol %q, answer %q; want nothing served", st.NegotiatedProtocol, firstLine(string(out)))
				}
			}
		})
	}
}

// TestACMEOnlyUnknownNames: on a listener whose certificates all come from ACME, a
// handshake for a name the acme block does not list (or without SNI) is an unknown name:
// counted as unknown_sni, and with unknown_sni: reject answered with the unrecognized_name
// alert (RFC 6066 §3), as on a listener with certificate files.
func TestACMEOnlyUnknownNames(t *testing.T) {
	for _, mode := range []string{"default", "reject"} {
		t.Run(mode, func(t *testing.T) {
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      unknown_sni: {{mode}}
      acme: {domains: [acme.test], ca: "https://127.0.0.1:{{dead}}/dir", storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"port": fmt.Sprint(testutil.FreePort(t)), "dead": fmt.Sprint(testutil.FreePort(t)), "mode": mode,
				"storage": t.TempDir(), "b": hostport(echoBackend(t, "a"))})
			for _, sni := range []string{"other.test", ""} {
				_, err := issuerOf(tg.addr, sni)
				var oe *net.OpError
				alert := errors.As(err, &oe) && oe.Op == "remote error" && oe.Err.Error() == tls.AlertError(112).Error()
				if err == nil || alert != (mode == "reject") {
					t.Errorf("SNI %q: %v; want a failed handshake, with the unrecognized_name alert: %v", sni, err, mode == "reject")
				}
			}
			testutil.WaitFor(t, 5*time.Second, "the failures counted as unknown_sni", func() bool {
				v, _ := gathered(t, tg).value("sluice_tls_handshake_errors_total", map[string]string{"reason": "unknown_sni"})
				return v == 2
			})
		})
	}
}
