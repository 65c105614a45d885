package gateway

import (
	"crypto/tls"
	"net"
	"testing"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/testutil"
)

// TestClientCertSessionTaggedByConnection: a TLS 1.3 backend that asks for a client
// certificate sends its session ticket after the client's last flight, so the ticket is read
// (and put in the session cache) only at the connection's first read, which can come after
// the client certificate's files were replaced and the replacement noticed (an idle
// preconnected connection's ticket is read by the reuse check or the sweeper). That session
// carries the old certificate's identity: it must not be resumed by the next connection,
// which presents the new certificate in a full handshake. (The session was tagged with the
// pair in force when its ticket arrived, so the next connection resumed it and the backend
// saw the old certificate.)
func TestClientCertSessionTaggedByConnection(t *testing.T) {
	ca := testutil.NewCA(t)
	crt, key, install := clientPairFiles(t, ca)
	install("client-one")

	srv := ca.ServerConfig(t, "127.0.0.1")
	srv.ClientAuth, srv.ClientCAs, srv.MinVersion = tls.RequireAndVerifyClientCert, ca.Pool(), tls.VersionTLS13
	type seen struct {
		cn      string
		resumed bool
	}
	seenc := make(chan seen, 4)
	addr := serveConns(t, func(raw net.Conn) {
		tc := tls.Server(raw, srv)
		if err := tc.Handshake(); err != nil {
			seenc <- seen{cn: "handshake failed: " + err.Error()}
			return
		}
		st := tc.ConnectionState()
		seenc <- seen{cn: st.PeerCertificates[0].Subject.CommonName, resumed: st.DidResume}
		tc.Write([]byte{1}) // after the ticket
		tc.Read(make([]byte, 1))
	})

	ut, err := buildUpstreamTLS(config.Upstream{TLS: &config.UpstreamTLS{CAFile: ca.CAFile(t), CertFile: crt, KeyFile: key}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ut.poolConfig(addr)
	dial := func() (*tls.Conn, seen) {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		tc := tls.Client(nc, connpool.ConnConfig(cfg))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc, <-seenc
	}
	readByte := func(tc *tls.Conn) {
		t.Helper()
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}

	first, s := dial() // its ticket waits, unread
	if s.cn != "client-one" || s.resumed {
		t.Fatalf("first connection: backend saw %+v, want client-one in a full handshake", s)
	}
	install("client-two")
	ut.client.checked.Store(0) // the 2 s check interval is over
	ut.client.refresh()
	readByte(first) // the ticket of the client-one session arrives now
	_, s = dial()
	if s.cn != "client-two" || s.resumed {
		t.Errorf("after the rotation: backend saw %+v, want client-two in a full handshake", s)
	}

	// Sessions of the new pair are resumed as before.
	second, _ := dial()
	readByte(second)
	if _, s = dial(); s.cn != "client-two" || !s.resumed {
		t.Errorf("backend saw %+v, want client-two resumed", s)
	}
}
