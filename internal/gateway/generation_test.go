package gateway

import (
	"testing"

	"sluice/internal/config"
	"sluice/internal/connpool"
)

// TestPoolDefaultsMatchConfig: connpool cannot import config, so the defaults both have are
// written in both; they must be the same values (connpool's connect timeout was 10s while
// the config's is 5s).
func TestPoolDefaultsMatchConfig(t *testing.T) {
	tests := []struct {
		name         string
		pool, config any
	}{
		{name: "keepalive.idle_timeout", pool: connpool.DefaultIdleTimeout, config: config.DefaultKeepaliveIdleTimeout.D()},
		{name: "keepalive.max_idle", pool: connpool.DefaultMaxIdle, config: config.DefaultMaxIdle},
		{name: "keepalive.safety_fraction", pool: connpool.DefaultSafetyFraction, config: config.DefaultSafetyFraction},
		{name: "timeouts.connect", pool: connpool.DefaultConnectTimeout, config: config.DefaultConnectTimeout.D()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pool != tc.config {
				t.Errorf("connpool default %v, config default %v", tc.pool, tc.config)
			}
		})
	}
}
