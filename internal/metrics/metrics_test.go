package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"sluice/internal/connpool"
	"sluice/internal/h2pool"
	"sluice/internal/reason"
)

func samplePools() []TargetPool {
	return []TargetPool{{
		Upstream: "api", Target: "10.0.0.1:80", InFlight: 2,
		Pool: connpool.Snapshot{
			Learned: 5 * time.Second, LearnedSource: "header", Provisional: 2500 * time.Millisecond, EffectiveIdle: 4250 * time.Millisecond,
			ReuseFactor: 1, Waiting: 1,
			Counters: connpool.Counters{Opened: 3, Reused: 10, StaleCaught: 1, ResetOnReuse: 1,
				QueueWaits: 2, QueueFull: 1, QueueTimeouts: 1, DialErrors: 4,
				ClosedBy: map[connpool.CloseReason]uint64{connpool.CloseBackendClose: 2, connpool.CloseIdleTimeout: 1},
				TLSFull:  1, TLSResumed: 2, TLSCertErrors: 3},
			Options: connpool.OptionsView{TLS: true},
			Conns:   []connpool.ConnInfo{{ID: 1, State: "idle"}, {ID: 2, State: "in_use"}, {ID: 3, State: "idle"}},
		},
		H2: &h2pool.Snapshot{Protocol: "auto", Negotiated: "h2",
			Counters: h2pool.Counters{Streams: 9, Unprocessed: 2, PingChecks: 1, ReadIdlePings: 3, PingFailures: 1, ProtocolChanges: 2},
			Closes:   map[h2pool.CloseReason]int64{h2pool.CloseGoAway: 2, h2pool.ClosePingTimeout: 1},
			Conns:    []h2pool.ConnInfo{{ID: 4, Streams: 9, Active: 1}}},
	}}
}

// fed returns Metrics with at least one sample in every family.
func fed() *Metrics {
	m := New(samplePools)
	r := m.Route("users", "api")
	r.Request(200, 30*time.Millisecond, 20*time.Millisecond, true)
	r.Request(502, time.Millisecond, time.Millisecond, true)
	r.Request(101, time.Millisecond, time.Millisecond, true)
	r.Attempt("ok")
	r.Attempt(string(reason.ConnectRefused))
	m.Route("", "").Request(404, time.Millisecond, 0, false)
	m.GatewayError(reason.NoRoute)
	m.ConfigApplied("abc", false)
	m.ConfigApplied("def", true)
	m.ReloadFailed()
	m.Retries.WithLabelValues("api", "not_sent").Inc()
	m.RetryBudgetExhausted.WithLabelValues("api").Inc()
	return m
}

// TestPromlint is the metric naming meta-test: every family Sluice exposes passes promlint.
func TestPromlint(t *testing.T) {
	m := fed()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	problems, err := promlint.New(strings.NewReader(rec.Body.String())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{nameRequests, nameRequestDuration, nameUpstreamDuration, nameGatewayErrors,
		nameAttempts, nameConfigInfo, nameConfigReloads, nameRetries, nameRetryBudget, namePoolConns,
		namePoolOpened, namePoolClosed, namePoolReuses, namePoolStaleCaught, namePoolResetOnReuse,
		namePoolLearnedIdle, namePoolProvisional, namePoolEffectiveIdle, namePoolReuseFactor, namePoolWaiting,
		namePoolQueueWaits, namePoolQueueFull, namePoolQueueTimeouts, namePoolDialErrors, namePoolInFlight,
		namePoolTLSHandshakes, namePoolTLSErrors, nameH2UpConns, nameH2UpStreams, nameH2UpUnprocessed,
		nameH2UpClosed, nameH2UpPings, nameUpNegotiated, nameUpProtocolChanges,
		"go_sched_latencies_seconds", "go_sync_mutex_wait_total_seconds_total"} {
		if !strings.Contains(rec.Body.String(), "\n# TYPE "+name+" ") {
			t.Errorf("%s missing from the exposition", name)
		}
	}
}

func TestValues(t *testing.T) {
	m := fed()
	tests := []struct {
		name string
		text string // expected exposition of the family
	}{
		{nameRequests, `
# HELP sluice_requests_total Client requests answered, by route, upstream and status class (route and upstream are empty when no route matched; a client that left counts as 4xx).
# TYPE sluice_requests_total counter
sluice_requests_total{code_class="1xx",route="users",upstream="api"} 1
sluice_requests_total{code_class="2xx",route="",upstream=""} 0
sluice_requests_total{code_class="2xx",route="users",upstream="api"} 1
sluice_requests_total{code_class="3xx",route="",upstream=""} 0
sluice_requests_total{code_class="3xx",route="users",upstream="api"} 0
sluice_requests_total{code_class="4xx",route="",upstream=""} 1
sluice_requests_total{code_class="4xx",route="users",upstream="api"} 0
sluice_requests_total{code_class="5xx",route="",upstream=""} 0
sluice_requests_total{code_class="5xx",route="users",upstream="api"} 1
`},
		{nameConfigInfo, `
# HELP sluice_config_info The config version serving now (the SHA-256 of the config file); always 1.
# TYPE sluice_config_info gauge
sluice_config_info{version="def"} 1
`},
		{nameConfigReloads, `
# HELP sluice_config_reloads_total Config reloads, by result (success or failure; a failed reload keeps the previous config serving).
# TYPE sluice_config_reloads_total counter
sluice_config_reloads_total{result="failure"} 1
sluice_config_reloads_total{result="success"} 1
`},
		{namePoolConns, `
# HELP sluice_upstream_connections Open connections to the target, by state (idle or in_use); their sum is the open connections.
# TYPE sluice_upstream_connections gauge
sluice_upstream_connections{state="idle",target="10.0.0.1:80",upstream="api"} 2
sluice_upstream_connections{state="in_use",target="10.0.0.1:80",upstream="api"} 1
`},
		{namePoolClosed, `
# HELP sluice_upstream_connections_closed_total Connections to the target closed, by reason (see docs/metrics.md).
# TYPE sluice_upstream_connections_closed_total counter
sluice_upstream_connections_closed_total{reason="backend_close",target="10.0.0.1:80",upstream="api"} 2
sluice_upstream_connections_closed_total{reason="idle_timeout",target="10.0.0.1:80",upstream="api"} 1
`},
		{namePoolLearnedIdle, `
# HELP sluice_upstream_learned_idle_timeout_seconds The backend idle timeout learned for the target (0: none), by source: header, observed, failure or none.
# TYPE sluice_upstream_learned_idle_timeout_seconds gauge
sluice_upstream_learned_idle_timeout_seconds{source="header",target="10.0.0.1:80",upstream="api"} 5
`},
		{namePoolProvisional, `
# HELP sluice_upstream_provisional_idle_timeout_seconds The idle age of a reset on a reused connection to the target that no second event confirmed yet (0: none): it bounds non-idempotent requests as a learned timeout would, not the others.
# TYPE sluice_upstream_provisional_idle_timeout_seconds gauge
sluice_upstream_provisional_idle_timeout_seconds{target="10.0.0.1:80",upstream="api"} 2.5
`},
		{namePoolEffectiveIdle, `
# HELP sluice_upstream_effective_idle_timeout_seconds The idle age at which pooled connections to the target are retired (0: no reuse).
# TYPE sluice_upstream_effective_idle_timeout_seconds gauge
sluice_upstream_effective_idle_timeout_seconds{target="10.0.0.1:80",upstream="api"} 4.25
`},
		{namePoolTLSHandshakes, `
# HELP sluice_upstream_tls_handshakes_total TLS handshakes of new connections to the target (upstreams with TLS only), by whether a session was resumed.
# TYPE sluice_upstream_tls_handshakes_total counter
sluice_upstream_tls_handshakes_total{resumed="false",target="10.0.0.1:80",upstream="api"} 1
sluice_upstream_tls_handshakes_total{resumed="true",target="10.0.0.1:80",upstream="api"} 2
`},
		{namePoolTLSErrors, `
# HELP sluice_upstream_tls_handshake_errors_total Failed TLS handshakes with the target (upstreams with TLS only), by reason code: upstream_tls_certificate or upstream_tls_handshake.
# TYPE sluice_upstream_tls_handshake_errors_total counter
sluice_upstream_tls_handshake_errors_total{reason="upstream_tls_certificate",target="10.0.0.1:80",upstream="api"} 3
sluice_upstream_tls_handshake_errors_total{reason="upstream_tls_handshake",target="10.0.0.1:80",upstream="api"} 0
`},
		{nameAttempts, `
# HELP sluice_upstream_attempts_total Upstream attempts, by upstream and outcome ("ok" or a reason code).
# TYPE sluice_upstream_attempts_total counter
sluice_upstream_attempts_total{outcome="ok",upstream="api"} 1
sluice_upstream_attempts_total{outcome="upstream_connect_refused",upstream="api"} 1
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(tc.text), tc.name); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCounterSetConcurrent(t *testing.T) {
	m := New(nil)
	done := make(chan struct{})
	codes := []reason.Code{reason.NoRoute, reason.BadRequest, reason.ConnectRefused, reason.PoolQueueFull}
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 1000; j++ {
				m.GatewayError(codes[(i+j)%len(codes)])
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	for _, c := range codes {
		if got := testutil.ToFloat64(m.errors.vec.WithLabelValues(string(c))); got != 1000 {
			t.Errorf("%s = %v, want 1000", c, got)
		}
	}
}

func TestRequestAllocs(t *testing.T) {
	m := New(nil)
	r := m.Route("users", "api")
	m.GatewayError(reason.ConnectRefused)
	r.Attempt("ok")
	allocs := testing.AllocsPerRun(1000, func() {
		r.Request(200, time.Millisecond, time.Millisecond, true)
		r.Attempt("ok")
		m.GatewayError(reason.ConnectRefused)
	})
	if allocs != 0 {
		t.Errorf("recording a request allocates %v times, want 0", allocs)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := New(nil)
	r := m.Route("users", "api")
	b.ReportAllocs()
	for b.Loop() {
		r.Request(200, time.Millisecond, time.Millisecond, true)
		r.Attempt("ok")
	}
}

// TestPluginStats: the plugins' stats become metrics that pass promlint, and unknown keys are
// dropped.
func TestPluginStats(t *testing.T) {
	m := New(nil)
	m.RegisterPluginStats(func() []PluginStat {
		return []PluginStat{
			{Plugin: "jwt-auth", Place: "api", Key: "jwks_fetches", Label: "failure", Value: 3},
			{Plugin: "jwt-auth", Place: "api", Key: "jwks_keys", Value: 2},
			{Plugin: "forward-auth", Place: "global", Key: "forward_auth_checks", Label: "timeout", Value: 1},
			{Plugin: "x", Place: "y", Key: "no_such_stat", Value: 9},
		}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sluice_jwks") || strings.HasPrefix(p.Metric, "sluice_forward_auth") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	for _, want := range []string{
		`sluice_jwks_fetches_total{place="api",plugin="jwt-auth",result="failure"} 3`,
		`sluice_jwks_keys{place="api",plugin="jwt-auth"} 2`,
		`sluice_forward_auth_checks_total{outcome="timeout",place="global",plugin="forward-auth"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(body, "no_such_stat") || strings.Contains(body, `plugin="x"`) {
		t.Errorf("an unknown stat was exposed")
	}
}
