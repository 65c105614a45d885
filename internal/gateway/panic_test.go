package gateway

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"sluice/internal/plugin"
	"sluice/internal/proxy"
	"sluice/internal/server"
)

// brokenRoute serves every request on a route with no upstream: the proxy dereferences nil,
// standing for any bug on the request path.
type brokenRoute struct{ g *Gateway }

func (b brokenRoute) ServeH1(ex *server.Exchange) {
	var rec proxy.Record
	b.g.serveRoute(ex, &proxy.Route{ID: "broken"}, &rec, new(plugin.Request), new(traceState))
	if rec.Reason != "internal_error" {
		panic("record not filled after a panic")
	}
}

// TestPanicIsAnsweredLoggedAndCounted: a panic on the request path is answered 502
// internal_error with the connection closed, logged with its stack and the request id, and
// counted in sluice_panics_total; the server goes on serving.
func TestPanicIsAnsweredLoggedAndCounted(t *testing.T) {
	logs := &syncBuffer{}
	g := New(slog.New(slog.NewTextHandler(logs, nil)), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(ln, server.Settings{Name: "t"}, brokenRoute{g}, g.log)
	go srv.Serve()
	defer srv.Shutdown(t.Context())

	for i := range 2 {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x", nil)
		req.Header.Set("X-Request-Id", "req-panic")
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 || resp.Header.Get("X-Sluice-Error") != "internal_error" || !resp.Close {
			t.Fatalf("request %d: %d %q close=%v; want 502 internal_error, connection closed", i, resp.StatusCode, resp.Header.Get("X-Sluice-Error"), resp.Close)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "panic serving request") || !strings.Contains(out, "request_id=req-panic") || !strings.Contains(out, "goroutine ") {
		t.Errorf("panic log lacks message, request id or stack:\n%s", out)
	}
	mfs, err := g.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "sluice_panics_total" {
			got = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if got != 2 {
		t.Errorf("sluice_panics_total = %v, want 2", got)
	}
}
