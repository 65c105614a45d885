package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"sluice/internal/accesslog"
)

// startGatewayLogged is startGateway with the gateway's own log (debug level) captured too,
// for tests that check what it says (or does not say: credentials).
func startGatewayLogged(t *testing.T, yaml string, vars map[string]string) (*testGateway, *syncBuffer) {
	t.Helper()
	cfg := mustParse(t, yaml, vars)
	off := false
	cfg.Admin.Enabled = &off
	logs, buf := &syncBuffer{}, &syncBuffer{}
	access := accesslog.New(buf)
	gw := New(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), access)
	if err := gw.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	tg := &testGateway{gw: gw, access: buf, t: t}
	for _, a := range gw.Addrs() {
		tg.addr = a.String()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		access.Close()
	})
	return tg, logs
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
