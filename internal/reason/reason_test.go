package reason

import "testing"

// TestTargetFault: the codes that count against a target (passive health, the balancer, an
// active check's verdict) are the target's own failures; a busy pool, the gateway's limits
// and the client's faults are not. Codes the table does not name (plugins' answers) never
// blame a target.
func TestTargetFault(t *testing.T) {
	tests := []struct {
		code Code
		want bool
	}{
		{ConnectRefused, true},
		{ConnectFailed, true},
		{ConnectTimeout, true},
		{TLSHandshake, true},
		{TLSCertificate, true},
		{ResetBeforeSend, true},
		{ResetBeforeResp, true},
		{ResetDuringResp, true},
		{ResponseTimeout, true},
		{BadResponse, true},
		{UpstreamStatus, true},
		{H2Unavailable, true},

		{PoolQueueTimeout, false}, // every connection or stream busy: the target is busy, not failing
		{PoolQueueFull, false},
		{NoHealthyTarget, false},
		{GatewayShutdown, false},
		{InternalError, false},
		{UpstreamOverloaded, false},
		{RetryBudgetExhausted, false},
		{RetryLimitReached, false},
		{ClientBodyError, false},
		{ClientTimeout, false},
		{BadRequest, false},
		{BodyTooLarge, false},
		{AuthUnavailable, false},
		{RateLimitUnavailable, false},
		{"", false},
	}
	named := map[Code]bool{}
	for _, tc := range tests {
		named[tc.code] = true
		t.Run(string(tc.code), func(t *testing.T) {
			if got := tc.code.TargetFault(); got != tc.want {
				t.Errorf("%q.TargetFault() = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
	for c := range descriptions {
		if !named[c] && c.TargetFault() {
			t.Errorf("%q.TargetFault() = true: add it to the table above", c)
		}
	}
}
