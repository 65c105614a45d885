package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// startGatewayLogged is startGateway with the gateway's own log (debug level) captured too,
// for tests that check what it says (or does not say: credentials).
func startGatewayLogged(t *testing.T, yaml string, vars map[string]string) (*testGateway, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return startGatewayLog(t, yaml, vars, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), logs
}

// send sends method path with header fields h (name, value pairs) and returns the response
// with its body read.
func send(t *testing.T, c *http.Client, method, url string, h ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(h); i += 2 {
		if http.CanonicalHeaderKey(h[i]) == "Host" {
			req.Host = h[i+1]
			continue
		}
		req.Header.Add(h[i], h[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// pluginAnswers returns sluice_plugin_answers_total{route, plugin, reason}.
func pluginAnswers(t *testing.T, tg *testGateway, route, plugin, reason string) float64 {
	t.Helper()
	mf := gathered(t, tg)["sluice_plugin_answers_total"]
	if mf == nil {
		return 0
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["route"] == route && l["plugin"] == plugin && l["reason"] == reason {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
