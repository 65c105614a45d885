package h2pool

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTLSResumption: connections of an h2 pool resume the TLS session of an earlier one
// (tls.session_resumption, on by default, docs/config.md), as the HTTP/1.1 pool's do: the
// pool keeps a session cache when its config has none. Before, it had none unless client
// certificates were set, and every connection made a full handshake.
func TestTLSResumption(t *testing.T) {
	ca := testutil.NewCA(t)
	var full, resumed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.Header.Get("x-test-id")+" ")
	}))
	srv.TLS = ca.ServerConfig(t, "127.0.0.1")
	srv.TLS.NextProtos = []string{"h2"}
	srv.TLS.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		return nil
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, off := range []bool{true, false} {
		full.Store(0)
		resumed.Store(0)
		o := testOptions()
		o.MaxRequests = 1 // a connection per request
		o.TLS = &tls.Config{RootCAs: ca.Pool(), SessionTicketsDisabled: off}
		p := newPool(t, srv.Listener.Addr().String(), o)
		for i := range 3 {
			if _, err := do(p, "https", string(rune('a'+i)), false); err != nil {
				t.Fatal(err)
			}
		}
		p.Close(CloseShutdown) // no spare of its own dials while the next round counts
		switch {
		case !off && resumed.Load() == 0:
			t.Errorf("resumption on: %d full handshakes, %d resumed; want resumed ones", full.Load(), resumed.Load())
		case off && resumed.Load() != 0:
			t.Errorf("resumption off: %d handshakes resumed; want none", resumed.Load())
		}
	}
}

// TestTLSSessionsForConn: each TLS dial uses its own view of a session cache that offers
// ForConn (connpool.ConnConfig), so sessions are told apart by the connection they came from.
func TestTLSSessionsForConn(t *testing.T) {
	ca := testutil.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.Header.Get("x-test-id")+" ")
	}))
	srv.TLS = ca.ServerConfig(t, "127.0.0.1")
	srv.TLS.NextProtos = []string{"h2"}
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cache := testutil.NewSessionViews()
	o := testOptions()
	o.MaxRequests = 1 // a connection per request
	o.TLS = &tls.Config{RootCAs: ca.Pool(), ClientSessionCache: cache}
	p := newPool(t, srv.Listener.Addr().String(), o)
	for i := range 3 {
		if _, err := do(p, "https", string(rune('a'+i)), false); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(CloseShutdown)
	// A replacement dialed ahead may be accepted after its view was taken.
	testutil.WaitFor(t, 5*time.Second, "a view of the session cache per connection", func() bool {
		return cache.Views() == conns.Load()
	})
	if v := cache.Views(); v < 3 {
		t.Errorf("%d views of the session cache for 3 requests on a connection each", v)
	}
}
