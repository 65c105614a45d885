package gateway

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestGRPCStatusLogged: a gRPC call's access log line carries grpc_status, the status its
// client was given, next to status (200 for every call the backend answered): 0 for a call
// that succeeded, the backend's code from its trailers and from a trailers-only answer,
// and the gateway's own when no backend could be reached (TestGRPCUpstreamDown). A request that
// is not a gRPC call has no grpc_status, even when the backend answers it with one
// (grpc-go answers a plain GET with a grpc-status of its own).
func TestGRPCStatusLogged(t *testing.T) {
	c, _, tg := grpcThroughGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := []struct {
		name       string
		call       func() error
		code       codes.Code
		wantStatus float64
	}{
		{"ok", func() error {
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 10})
			return err
		}, codes.OK, 200},
		{"trailers-only error", func() error {
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.Unavailable), Message: "backend says no"}})
			return err
		}, codes.Unavailable, 200},
		{"error in trailers", func() error {
			s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
				ResponseParameters: []*testgrpc.ResponseParameters{{Size: 5}},
				ResponseStatus:     &testgrpc.EchoStatus{Code: int32(codes.PermissionDenied), Message: "after a message"}})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}, codes.PermissionDenied, 200},
	}
	for i, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != tc.code {
				t.Fatalf("call: %v; want %v", err, tc.code)
			}
			l := tg.accessLines(i + 1)[i]
			if l["status"] != tc.wantStatus || l["grpc_status"] != float64(tc.code) {
				t.Errorf("access log: status %v grpc_status %v; want %v %d", l["status"], l["grpc_status"], tc.wantStatus, tc.code)
			}
		})
	}
	t.Run("not a gRPC call", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &p}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", tg.url("/plain"), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Grpc-Status") == "" {
			t.Logf("the backend's answer has no grpc-status (status %d): the row proves less", resp.StatusCode)
		}
		l := tg.accessLines(len(calls) + 1)[len(calls)]
		if _, ok := l["grpc_status"]; ok || l["path"] != "/plain" {
			t.Errorf("access log: path %v grpc_status %v; want /plain without grpc_status", l["path"], l["grpc_status"])
		}
	})
	// sluice_grpc_calls_total: one per call, by the code's name; the plain GET is not one.
	for _, code := range []string{"OK", "UNAVAILABLE", "PERMISSION_DENIED"} {
		h2Counter(t, tg, "sluice_grpc_calls_total", map[string]string{"route": "all", "upstream": "grpc", "grpc_code": code}, 1)
	}
	if n := len(gathered(t, tg)["sluice_grpc_calls_total"].GetMetric()); n != 3 {
		t.Errorf("%d sluice_grpc_calls_total series; want 3 (a series per code seen)", n)
	}
}
