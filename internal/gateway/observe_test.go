package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"sluice/internal/testutil"
)

// metricsConfig has a keep-alive backend advertising "timeout=2", a dead upstream and no
// catch-all route, with the admin listener on a free port.
const metricsConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: adv
    targets: [{address: "{{adv}}"}]
  - id: dead
    targets: [{address: "{{dead}}"}]
routes:
  - id: api
    match: {path_prefix: /api/}
    upstream: adv
  - id: broken
    match: {path_prefix: /dead/}
    upstream: dead
admin:
  address: 127.0.0.1:0
`

// adminURL returns the URL of path on tg's admin listener.
func (tg *testGateway) adminURL(path string) string {
	tg.t.Helper()
	a := tg.gw.AdminAddr()
	if a == nil {
		tg.t.Fatal("admin listener is not running")
	}
	return "http://" + a.String() + path
}

// families is a parsed /metrics scrape.
type families map[string]*dto.MetricFamily

func scrape(t *testing.T, url string) (families, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams, string(body)
}

// value returns the value of the series of name whose labels include want (for a histogram,
// its sample count); ok is false when there is no such series.
func (f families) value(name string, want map[string]string) (v float64, ok bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// sum returns the sample sum of the histogram series of name whose labels include want
// (0 when there is none).
func (f families) sum(name string, want map[string]string) float64 {
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			if hasLabels(m, want) && m.Histogram != nil {
				return m.Histogram.GetSampleSum()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.Label {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

type metricCheck struct {
	name   string
	labels map[string]string
	cmp    string // "==" or ">="
	want   float64
}

func checkMetrics(t *testing.T, f families, checks []metricCheck) {
	t.Helper()
	for _, c := range checks {
		got, ok := f.value(c.name, c.labels)
		switch {
		case !ok:
			t.Errorf("%s%v: no such series", c.name, c.labels)
		case c.cmp == "==" && got != c.want, c.cmp == ">=" && got < c.want:
			t.Errorf("%s%v = %v, want %s %v", c.name, c.labels, got, c.cmp, c.want)
		}
	}
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestMetricsEndToEnd sends traffic through the gateway and reads it back from /metrics.
func TestMetricsEndToEnd(t *testing.T) {
	adv := testutil.AdvertisingCloser(t, 2, 2*time.Second)
	tg := startGateway(t, metricsConfig, map[string]string{"adv": adv.Addr(), "dead": testutil.RefusingAddr(t)})
	c := newClient()
	for i := 0; i < 5; i++ {
		mustStatus(t, get(t, c, tg.url(fmt.Sprintf("/api/%d", i))), 200)
	}
	mustStatus(t, get(t, c, tg.url("/nowhere")), 404)
	mustStatus(t, get(t, c, tg.url("/dead/x")), 502)

	f, text := scrape(t, tg.adminURL("/metrics"))
	api := map[string]string{"upstream": "adv"}
	checkMetrics(t, f, []metricCheck{
		{"sluice_requests_total", map[string]string{"route": "api", "upstream": "adv", "code_class": "2xx"}, "==", 5},
		{"sluice_requests_total", map[string]string{"route": "api", "upstream": "adv", "code_class": "5xx"}, "==", 0},
		{"sluice_requests_total", map[string]string{"route": "", "upstream": "", "code_class": "4xx"}, "==", 1},
		{"sluice_requests_total", map[string]string{"route": "broken", "upstream": "dead", "code_class": "5xx"}, "==", 1},
		{"sluice_request_duration_seconds", map[string]string{"route": "api"}, "==", 5},
		{"sluice_upstream_duration_seconds", map[string]string{"route": "api"}, "==", 5},
		{"sluice_request_duration_seconds", map[string]string{"route": ""}, "==", 1},
		{"sluice_gateway_errors_total", map[string]string{"reason": "no_route"}, "==", 1},
		{"sluice_gateway_errors_total", map[string]string{"reason": "upstream_connect_refused"}, "==", 1},
		{"sluice_upstream_attempts_total", map[string]string{"upstream": "adv", "outcome": "ok"}, "==", 5},
		{"sluice_upstream_attempts_total", map[string]string{"upstream": "dead", "outcome": "upstream_connect_refused"}, ">=", 1},
		{"sluice_upstream_connections_opened_total", api, ">=", 1},
		{"sluice_upstream_connection_reuses_total", api, ">=", 3},
		{"sluice_upstream_connections", map[string]string{"upstream": "adv", "state": "idle"}, ">=", 1},
		{"sluice_upstream_connections", map[string]string{"upstream": "adv", "state": "in_use"}, "==", 0},
		{"sluice_upstream_learned_idle_timeout_seconds", map[string]string{"upstream": "adv", "source": "header"}, "==", 2},
		{"sluice_upstream_effective_idle_timeout_seconds", api, "==", 1.7},
		{"sluice_upstream_reuse_factor", api, "==", 1},
		{"sluice_upstream_stale_connections_caught_total", api, "==", 0},
		{"sluice_upstream_reset_on_reuse_total", api, "==", 0},
		{"sluice_upstream_in_flight_requests", api, "==", 0},
		{"sluice_upstream_dial_errors_total", map[string]string{"upstream": "dead"}, ">=", 1},
		{"sluice_upstream_learned_idle_timeout_seconds", map[string]string{"upstream": "dead", "source": "none"}, "==", 0},
		{"sluice_config_info", map[string]string{"version": tg.gw.Current().Config.Hash}, "==", 1},
		{"sluice_config_reloads_total", map[string]string{"result": "success"}, "==", 0},
		{"sluice_config_reloads_total", map[string]string{"result": "failure"}, "==", 0},
		{"sluice_retry_budget_exhausted_total", api, "==", 0},
	})
	if _, ok := f.value("sluice_upstream_duration_seconds", map[string]string{"route": ""}); ok {
		t.Error("sluice_upstream_duration_seconds has a series for unmatched requests, which never reach an upstream")
	}
	// A request's time covers its upstream time (both are measured, not just counted).
	if req, up := f.sum("sluice_request_duration_seconds", map[string]string{"route": "api"}),
		f.sum("sluice_upstream_duration_seconds", map[string]string{"route": "api"}); up <= 0 || req < up {
		t.Errorf("request durations sum to %gs, upstream durations to %gs: want 0 < upstream <= request", req, up)
	}
	if f["sluice_config_info"] != nil && len(f["sluice_config_info"].Metric) != 1 {
		t.Errorf("sluice_config_info has %d series, want 1", len(f["sluice_config_info"].Metric))
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsReloads counts reload results and follows the config version.
func TestMetricsReloads(t *testing.T) {
	adv := testutil.AdvertisingCloser(t, 2, 2*time.Second)
	vars := map[string]string{"adv": adv.Addr(), "dead": testutil.RefusingAddr(t)}
	tg := startGateway(t, metricsConfig, vars)
	first := tg.gw.Current().Config.Hash

	next := mustParse(t, metricsConfig+"shutdown_grace: 1s\n", vars)
	if err := tg.gw.Apply(next); err != nil {
		t.Fatal(err)
	}
	// A listener on the backend's address cannot be bound: Apply refuses the config.
	bad := mustParse(t, strings.Replace(metricsConfig, "- address: 127.0.0.1:0", "- address: "+adv.Addr(), 1), vars)
	if err := tg.gw.Apply(bad); err == nil {
		t.Fatal("apply with an unbindable listener succeeded")
	}
	tg.gw.ReloadFailed(fmt.Errorf("test: config file does not parse"))

	f, _ := scrape(t, tg.adminURL("/metrics"))
	checkMetrics(t, f, []metricCheck{
		{"sluice_config_reloads_total", map[string]string{"result": "success"}, "==", 1},
		{"sluice_config_reloads_total", map[string]string{"result": "failure"}, "==", 2},
		{"sluice_config_info", map[string]string{"version": next.Hash}, "==", 1},
	})
	if _, ok := f.value("sluice_config_info", map[string]string{"version": first}); ok {
		t.Errorf("sluice_config_info still reports the replaced version %s", first)
	}
}

// TestMetricsAcrossReload: a route's series keep counting across a reload that keeps it.
func TestMetricsAcrossReload(t *testing.T) {
	adv := testutil.AdvertisingCloser(t, 2, 2*time.Second)
	vars := map[string]string{"adv": adv.Addr(), "dead": testutil.RefusingAddr(t)}
	tg := startGateway(t, metricsConfig, vars)
	c := newClient()
	mustStatus(t, get(t, c, tg.url("/api/1")), 200)
	if err := tg.gw.Apply(mustParse(t, metricsConfig+"shutdown_grace: 1s\n", vars)); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, get(t, c, tg.url("/api/2")), 200)
	// The gateway counts a request after its response went out: the client can be faster.
	var f families
	testutil.WaitFor(t, 2*time.Second, "both requests counted", func() bool {
		f, _ = scrape(t, tg.adminURL("/metrics"))
		v, _ := f.value("sluice_requests_total", map[string]string{"route": "api", "code_class": "2xx"})
		return v >= 2
	})
	checkMetrics(t, f, []metricCheck{
		{"sluice_requests_total", map[string]string{"route": "api", "code_class": "2xx"}, "==", 2},
		{"sluice_upstream_connection_reuses_total", map[string]string{"upstream": "adv"}, ">=", 1},
	})
}
