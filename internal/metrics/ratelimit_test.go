package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"sluice/internal/ratelimit"
)

// TestLimitMetrics: the limit families pass promlint, and the decision results partition
// the decisions (fail_open is not also counted as admitted).
func TestLimitMetrics(t *testing.T) {
	m := New(nil)
	m.SetLimitSource(func() []Limit {
		return []Limit{{Plugin: "rate-limit", Name: "api", Stats: ratelimit.Stats{Admitted: 10, Limited: 4,
			StoreErrors: 3, FailOpen: 2, FailClosed: 1, Keys: 7, Evictions: 5}}}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sluice_ratelimit") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	for _, want := range []string{
		`sluice_ratelimit_decisions_total{limit="api",plugin="rate-limit",result="admitted"} 8`,
		`sluice_ratelimit_decisions_total{limit="api",plugin="rate-limit",result="limited"} 3`,
		`sluice_ratelimit_decisions_total{limit="api",plugin="rate-limit",result="fail_open"} 2`,
		`sluice_ratelimit_decisions_total{limit="api",plugin="rate-limit",result="fail_closed"} 1`,
		`sluice_ratelimit_redis_errors_total{limit="api",plugin="rate-limit"} 3`,
		`sluice_ratelimit_keys{limit="api",plugin="rate-limit"} 7`,
		`sluice_ratelimit_evictions_total{limit="api",plugin="rate-limit"} 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
