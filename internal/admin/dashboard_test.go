package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/metrics"
	"sluice/internal/testutil"
)

func TestQuantile(t *testing.T) {
	bounds := []float64{0.01, 0.1, 1}
	tests := []struct {
		name  string
		q     float64
		cum   []uint64
		count uint64
		want  float64
	}{
		{name: "all in first bucket, median", q: 0.5, cum: []uint64{10, 10, 10}, count: 10, want: 0.005},
		{name: "median at a bucket edge", q: 0.5, cum: []uint64{5, 10, 10}, count: 10, want: 0.01},
		{name: "p99 inside the second bucket", q: 0.99, cum: []uint64{0, 100, 100}, count: 100, want: 0.01 + 0.09*0.99},
		{name: "past the last bound", q: 0.99, cum: []uint64{0, 0, 0}, count: 10, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, bounds, tc.cum, tc.count); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTrafficView: rates, errors and percentiles come from the difference of neighbouring
// samples, and the route rates from the last ten seconds.
func TestTrafficView(t *testing.T) {
	var next metrics.Totals
	tr := newTraffic(func() metrics.Totals { return next })
	t0 := time.Unix(1000, 0)
	bounds := []float64{0.01, 0.1, 1}
	next = metrics.Totals{Requests: map[string]uint64{"a": 10}, Errors: map[string]uint64{},
		Bounds: bounds, Buckets: []uint64{10, 10, 10}, DurationCount: 10}
	tr.add(t0)
	next = metrics.Totals{Requests: map[string]uint64{"a": 30, "b": 20}, Errors: map[string]uint64{"no_route": 3},
		Bounds: bounds, Buckets: []uint64{10, 50, 50}, DurationCount: 50}
	tr.add(t0.Add(2 * time.Second))
	v := tr.view()
	if len(v.Points) != 1 {
		t.Fatalf("points %d, want 1", len(v.Points))
	}
	p := v.Points[0]
	if p.Requests != 40 || p.Rate != 20 || p.Errors["no_route"] != 3 {
		t.Errorf("point %+v: want 40 requests, 20/s, 3 no_route", p)
	}
	// All 40 new requests are in (0.01, 0.1]: p50 halfway through that bucket.
	if math.Abs(p.P50-0.055) > 1e-9 || p.P99 > 0.1 || p.P99 < 0.09 {
		t.Errorf("p50 %v p99 %v: want 0.055 and just under 0.1", p.P50, p.P99)
	}
	if v.Routes["b"].Total != 20 || v.Routes["b"].Rate != 10 || v.ErrorsTotal["no_route"] != 3 {
		t.Errorf("routes %+v errors %v", v.Routes, v.ErrorsTotal)
	}
	if n := len(tr.view(t0.Add(2*time.Second + 300*time.Microsecond)).Points); n != 0 {
		t.Errorf("since the last sample: %d points, want none", n)
	}
	if n := len(tr.view(t0.Add(time.Second)).Points); n != 1 {
		t.Errorf("since before the last sample: %d points, want 1", n)
	}
}

// poolAt is a snapshot of one target with the given live connections and history.
func poolAt(conns []connpool.ConnInfo, hist []connpool.LifeRecord) []Target {
	return []Target{{Address: "t:1", Pool: connpool.Snapshot{Addr: "t:1", Conns: conns, History: hist}}}
}

// TestTimelineReuses: how polls turn snapshots into reuse marks (see timeline.go).
func TestTimelineReuses(t *testing.T) {
	t0 := time.Unix(2000, 0)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := func(n int) time.Time { return t0.Add(ms(n)) }
	conn := func(state string, served int, lastUsed time.Time, lastIdle time.Duration) connpool.ConnInfo {
		return connpool.ConnInfo{ID: 7, State: state, Created: t0, LastUsed: lastUsed, Served: served, LastIdleAge: lastIdle}
	}
	tl := newTimelines()
	poll := func(now int, conns []connpool.ConnInfo, hist []connpool.LifeRecord) lineConn {
		t.Helper()
		v := tl.observe("u", poolAt(conns, hist), at(now))
		if len(v[0].Connections) != 1 {
			t.Fatalf("poll at %d ms: %d connections", now, len(v[0].Connections))
		}
		return v[0].Connections[0]
	}
	// Idle after its first request (ended at 100 ms); reused at 400 ms (idle 300 ms), which
	// ended at 450 ms: the next poll sees one more request and places the reuse exactly.
	poll(200, []connpool.ConnInfo{conn("idle", 1, at(100), 0)}, nil)
	c := poll(1200, []connpool.ConnInfo{conn("idle", 2, at(450), ms(300))}, nil)
	if len(c.Reuses) != 1 || !c.Reuses[0].Exact || !c.Reuses[0].Time.Equal(at(400)) || c.Reuses[0].IdleAge != 0.3 {
		t.Fatalf("after one reuse: %+v; want one exact mark at 400 ms, idle 0.3 s", c.Reuses)
	}
	// In use now (third request, idle 500 ms at checkout): exact, from the last end.
	c = poll(2200, []connpool.ConnInfo{conn("in_use", 2, at(450), ms(500))}, nil)
	if len(c.Reuses) != 2 || !c.Reuses[1].Exact || !c.Reuses[1].Time.Equal(at(950)) {
		t.Fatalf("in a reuse: %+v; want a second exact mark at 950 ms", c.Reuses)
	}
	// Three more requests between two polls: one mark ×3 (the first of them was the
	// in-use one already counted), at the end of the latest, not exact.
	c = poll(3200, []connpool.ConnInfo{conn("idle", 6, at(3000), ms(20))}, nil)
	if len(c.Reuses) != 3 || c.Reuses[2].Count != 3 || c.Reuses[2].Exact || !c.Reuses[2].Time.Equal(at(3000)) {
		t.Fatalf("after a burst: %+v; want a mark ×3 at 3000 ms", c.Reuses)
	}
	// Closed by the backend while idle (the sweeper saw it), after one more request no
	// poll saw.
	closed := []connpool.LifeRecord{{ID: 7, Created: t0, Closed: at(3900), Served: 7, LastIdleAge: ms(40),
		LastUsed: at(3600), Reason: connpool.CloseBackendClosedIdle}}
	c = poll(4200, nil, closed)
	if c.State != "closed" || c.Reason != "backend_closed_idle" || math.Abs(c.ClosedIdle-0.3) > 1e-9 {
		t.Fatalf("closed: %+v; want backend_closed_idle at 0.3 s idle", c)
	}
	if len(c.Reuses) != 4 || c.Reuses[3].Count != 1 || c.Reuses[3].IdleAge != 0.04 {
		t.Fatalf("closed: reuses %+v; want the unseen last reuse added (idle 40 ms)", c.Reuses)
	}
	// A connection no poll saw, closed in its third request (backend_close): its last reuse
	// began at LastUsed + LastIdleAge; the earlier one is counted in it.
	tl = newTimelines()
	closed = []connpool.LifeRecord{{ID: 7, Created: t0, Closed: at(900), Served: 3, LastIdleAge: ms(100),
		LastUsed: at(500), Reason: connpool.CloseBackendClose}}
	c = poll(1000, nil, closed)
	if len(c.Reuses) != 1 || c.Reuses[0].Count != 2 || !c.Reuses[0].Time.Equal(at(600)) || c.ClosedIdle != 0 {
		t.Fatalf("unseen, closed in use: %+v", c)
	}
	// One the reuse check found dead at checkout: the record's last idle age is that
	// checkout's, so the reuse's is unknown.
	tl = newTimelines()
	closed = []connpool.LifeRecord{{ID: 7, Created: t0, Closed: at(900), Served: 2, LastIdleAge: ms(400),
		LastUsed: at(500), Reason: connpool.CloseBackendClosedIdle}}
	c = poll(1000, nil, closed)
	if len(c.Reuses) != 1 || c.Reuses[0].IdleAge != -1 || c.ClosedIdle != 0.4 {
		t.Fatalf("unseen, caught at checkout: %+v", c)
	}
}

// dashSource is a Source and Dashboard with one upstream "u" whose target is addr.
type dashSource struct{ addr string }

func (s dashSource) Status() Status {
	return Status{Version: "test", Started: time.Now(), Config: &config.Config{}}
}
func (s dashSource) Targets(id string) ([]Target, bool) {
	if id != "u" {
		return nil, false
	}
	return []Target{{Address: s.addr, Weight: 1}}, true
}
func (s dashSource) Tunnels() []Tunnel       { return nil }
func (s dashSource) Totals() metrics.Totals  { return metrics.Totals{} }
func (s dashSource) Reloads() []Reload       { return []Reload{{Result: "applied"}} }
func (s dashSource) RouteOrder() []RouteRank { return nil }
func startAdmin(t *testing.T, src Source, key string) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", key, src, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return "http://" + s.Addr().String()
}

func do(t *testing.T, method, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestDashboardAccess: the page's files load without the key (they hold no data) with a
// strict CSP; every data endpoint, the new ones included, needs the key; a path that
// starts with /ui/ cannot reach the data without it.
func TestDashboardAccess(t *testing.T) {
	const key = "0123456789abcdef0123"
	base := startAdmin(t, dashSource{addr: "127.0.0.1:1"}, key)
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/pages.js", "/ui/svg.js", "/ui/app.css"} {
		resp, body := do(t, "GET", base+p, nil, "")
		if resp.StatusCode != 200 || len(body) < 100 {
			t.Errorf("GET %s without key: %d (%d bytes), want 200", p, resp.StatusCode, len(body))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
	}
	if resp, _ := do(t, "GET", base+"/ui", nil, ""); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/admin/traffic", "/admin/reloads", "/admin/routes/order", "/admin/upstreams/u/timeline", "/ui/../admin/status", "/ui/%2e%2e/admin/traffic"} {
		resp, body := do(t, "GET", base+p, nil, "")
		if resp.StatusCode == 200 || strings.Contains(body, `"version"`) || strings.Contains(body, "reloads") {
			t.Errorf("GET %s without key: %d %q; want no data", p, resp.StatusCode, body)
		}
		if strings.HasPrefix(p, "/admin/") {
			if resp, _ := do(t, "GET", base+p, map[string]string{"X-API-Key": key}, ""); resp.StatusCode != 200 {
				t.Errorf("GET %s with the key: %d", p, resp.StatusCode)
			}
		}
	}
	resp, _ := do(t, "POST", base+"/admin/probe", map[string]string{"Content-Type": "application/json"}, `{"upstream":"u","target":"127.0.0.1:1"}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /admin/probe without key: %d, want 401", resp.StatusCode)
	}
}

// TestProbeEndpoint: POST /admin/probe measures a target of the config with the probe
// package, within its bounds, one at a time, and refuses anything else.
func TestProbeEndpoint(t *testing.T) {
	be := testutil.IdleCloser(t, 200*time.Millisecond)
	base := startAdmin(t, dashSource{addr: be.Addr()}, "")
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name   string
		header map[string]string
		body   string
		status int
		want   string
	}{
		{name: "form post", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body: "upstream=u", status: 400, want: "application/json"},
		{name: "not in the config", header: json, body: `{"upstream":"u","target":"10.1.2.3:80"}`, status: 404, want: "no target"},
		{name: "unknown upstream", header: json, body: `{"upstream":"x","target":"` + be.Addr() + `"}`, status: 404},
		{name: "wait too long", header: json, body: `{"upstream":"u","target":"` + be.Addr() + `","max_wait_seconds":60}`, status: 400, want: "max_wait_seconds"},
		{name: "unknown field", header: json, body: `{"upstream":"u","host":"x"}`, status: 400},
		{name: "relative path", header: json, body: `{"upstream":"u","target":"` + be.Addr() + `","path":"x"}`, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "POST", base+"/admin/probe", tc.header, tc.body)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want %d with %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	good := `{"upstream":"u","target":"` + be.Addr() + `","max_wait_seconds":2,"max_requests":10}`
	probeSlot <- struct{}{} // a probe is running
	resp, body := do(t, "POST", base+"/admin/probe", json, good)
	<-probeSlot
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "probe_busy") {
		t.Errorf("second probe at once: %d %s; want 429 probe_busy", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base+"/admin/probe", json, good)
	var out struct {
		Result struct {
			KeepsAlive bool `json:"keeps_alive"`
			Idle       struct {
				Observed bool
				Timeout  float64 `json:"timeout_ms"`
			}
		}
	}
	if err := jsonDecode(body, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("probe: %d %s (%v)", resp.StatusCode, body, err)
	}
	if !out.Result.KeepsAlive || !out.Result.Idle.Observed || out.Result.Idle.Timeout < 150 || out.Result.Idle.Timeout > 500 {
		t.Errorf("probe result %+v; the backend closes idle connections at 200 ms", out.Result)
	}
}

func jsonDecode(s string, v any) error { return json.NewDecoder(bytes.NewBufferString(s)).Decode(v) }

// BenchmarkTrafficView is the cost of one /admin/traffic answer with a full ring (the
// dashboard's overview asks once a second).
func BenchmarkTrafficView(b *testing.B) {
	n := uint64(0)
	tr := newTraffic(func() metrics.Totals {
		n += 100
		return metrics.Totals{Requests: map[string]uint64{"a": n, "b": n / 2}, Errors: map[string]uint64{"no_route": n / 100},
			Bounds: []float64{0.001, 0.01, 0.1, 1}, Buckets: []uint64{n / 4, n / 2, n, n}, DurationCount: n}
	})
	t0 := time.Now()
	for i := range trafficSamples {
		tr.add(t0.Add(time.Duration(i) * time.Second))
	}
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		tr.mu.Lock()
		tr.adds++ // a new sample each time: the cache never answers
		tr.mu.Unlock()
		enc, err := tr.encoded()
		if err != nil {
			b.Fatal(err)
		}
		size = len(enc)
	}
	b.ReportMetric(float64(size), "bytes/answer")
}
