package config

import (
	"os"
	"testing"
	"time"
)

// TestTCPKeepaliveValues: 0s is off (kept as 0, not replaced by the default), a value is
// kept, an omitted field is the default 15s.
func TestTCPKeepaliveValues(t *testing.T) {
	data, err := os.ReadFile("testdata/tcp_keepalive.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("tcp_keepalive.good.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{0, 2 * time.Minute, 15 * time.Second} {
		if got := c.Listeners[i].TCPKeepaliveValue(); got != want {
			t.Errorf("listeners[%d]: tcp_keepalive %v, want %v", i, got, want)
		}
	}
	if got := (Listener{}).TCPKeepaliveValue(); got != DefaultTCPKeepalive.D() {
		t.Errorf("a Listener built in code: %v, want the default", got)
	}
}
