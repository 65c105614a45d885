package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// End-to-end tests of every endpoint and of key enforcement run through the gateway
// (internal/gateway/admin_test.go); this covers how a presented key is read.
func TestPresentedKey(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		want   string
		ok     bool
	}{
		{name: "none", ok: false},
		{name: "bearer", header: map[string]string{"Authorization": "Bearer k1"}, want: "k1", ok: true},
		{name: "bearer any case", header: map[string]string{"Authorization": "bEaReR k1"}, want: "k1", ok: true},
		{name: "basic is not a key", header: map[string]string{"Authorization": "Basic k1"}, ok: false},
		{name: "scheme only", header: map[string]string{"Authorization": "Bearer"}, ok: false},
		{name: "x-api-key", header: map[string]string{"X-API-Key": "k2"}, want: "k2", ok: true},
		{name: "x-api-key wins", header: map[string]string{"X-API-Key": "k2", "Authorization": "Bearer k1"}, want: "k2", ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/admin/status", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			got, ok := presentedKey(r)
			if got != tc.want || ok != tc.ok {
				t.Errorf("presentedKey = %q, %t; want %q, %t", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestCloseClosesListener: after Close nothing accepts on the admin address, whether Serve
// was running, had not started yet, or never runs (issue #14: http.Server.Close alone left
// a listener open when its Serve had not started tracking it).
func TestCloseClosesListener(t *testing.T) {
	tests := []struct {
		name  string
		serve string // "before": Serve runs before Close; "after": only after; "never"
	}{
		{name: "serving", serve: "before"},
		{name: "serve not started", serve: "after"},
		{name: "never served", serve: "never"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Listen("127.0.0.1:0", "", nil, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			addr := s.Addr().String()
			served := make(chan error, 1)
			if tc.serve == "before" {
				go func() { served <- s.Serve() }()
				waitServing(t, addr)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if !testutil.DialRefused(t, addr) {
				t.Errorf("%s still accepts connections after Close", addr)
			}
			if tc.serve == "after" {
				go func() { served <- s.Serve() }()
			}
			if tc.serve != "never" {
				if err := <-served; err != nil {
					t.Errorf("Serve = %v, want nil after Close", err)
				}
			}
		})
	}
}

// waitServing polls until the server at addr answers an HTTP request.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for range 100 {
		resp, err := c.Get("http://" + addr + "/metrics")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s does not answer", addr)
}
