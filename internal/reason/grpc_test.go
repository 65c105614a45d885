package reason

import "testing"

// TestGRPCStatus: UNAVAILABLE (which gRPC clients retry) only for failures that prove the
// request was not delivered; a failure after it may have run is UNKNOWN; codes a table
// does not know fall back to their HTTP status.
func TestGRPCStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   Code
		want   int
	}{
		{502, ConnectRefused, GRPCUnavailable},
		{502, ResetBeforeSend, GRPCUnavailable},
		{503, NoHealthyTarget, GRPCUnavailable},
		{503, GatewayShutdown, GRPCUnavailable},
		{421, ClientCertNoLongerTrusted, GRPCUnavailable},
		{502, ResetBeforeResp, GRPCUnknown},
		{502, ResetDuringResp, GRPCUnknown},
		{504, ResponseTimeout, GRPCDeadlineExceeded},
		{413, BodyTooLarge, GRPCResourceExhausted},
		{503, UpstreamOverloaded, GRPCResourceExhausted},
		{404, NoRoute, GRPCUnimplemented},
		{502, InternalError, GRPCInternal},
		{499, ClientBodyError, GRPCCanceled},
		// Codes added later (a plugin's) by their status.
		{401, "auth_required", GRPCUnauthenticated},
		{403, "forbidden", GRPCPermissionDenied},
		{429, "rate_limited", GRPCResourceExhausted},
		{503, "something_new", GRPCUnknown},
		{504, "slow_new", GRPCDeadlineExceeded},
	} {
		if got := GRPCStatus(&Error{Status: tc.status, Code: tc.code}); got != tc.want {
			t.Errorf("%d %s: got %d, want %d", tc.status, tc.code, got, tc.want)
		}
	}
}

func TestGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"no_route":    "no_route",
		"100% sure":   "100%25 sure",
		"line\nbreak": "line%0Abreak",
		"caf\xc3\xa9": "caf%C3%A9",
	} {
		if got := GRPCMessage(in); got != want {
			t.Errorf("GRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
