package admin

import (
	"net/http/httptest"
	"testing"
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
