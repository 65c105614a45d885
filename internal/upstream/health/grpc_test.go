package health

import (
	"encoding/binary"
	"strings"
	"testing"

	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// frame wraps m in a gRPC message frame (not compressed).
func frame(m []byte) []byte {
	f := make([]byte, 5, 5+len(m))
	binary.BigEndian.PutUint32(f[1:], uint32(len(m)))
	return append(f, m...)
}

// TestGRPCHealthMessages checks the hand-made messages against the generated grpc.health.v1
// code: the request decodes to the service asked about, and every answer status (and an
// answer with a field unknown to the probe) is read back.
func TestGRPCHealthMessages(t *testing.T) {
	for _, svc := range []string{"", "helloworld.Greeter", strings.Repeat("a.", 100) + "Long"} {
		f := GRPCProbe{Service: svc}.request()
		var req healthgrpc.HealthCheckRequest
		if n := binary.BigEndian.Uint32(f[1:5]); f[0] != 0 || int(n) != len(f)-5 {
			t.Fatalf("service %q: frame header % x for %d bytes", svc, f[:5], len(f)-5)
		}
		if err := proto.Unmarshal(f[5:], &req); err != nil || req.GetService() != svc {
			t.Errorf("request for %q decodes to %q, %v", svc, req.GetService(), err)
		}
	}
	for st := range healthgrpc.HealthCheckResponse_ServingStatus_name {
		m, err := proto.Marshal(&healthgrpc.HealthCheckResponse{Status: healthgrpc.HealthCheckResponse_ServingStatus(st)})
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, 0x12, 2, 'h', 'i') // field 2 (bytes): not the probe's, skipped
		got, err := parseHealthResponse(frame(m))
		if err != nil || got != uint64(st) {
			t.Errorf("status %d: parsed %d, %v", st, got, err)
		}
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"short", []byte{0, 0, 0}, "shorter than a gRPC message header"},
		{"compressed", []byte{1, 0, 0, 0, 2, 0x08, 1}, "compressed"},
		{"length mismatch", []byte{0, 0, 0, 0, 5, 0x08, 1}, "header says 5"},
		{"truncated varint", frame([]byte{0x08, 0x80}), "answer status"},
	} {
		if _, err := parseHealthResponse(tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error with %q", tc.name, err, tc.want)
		}
	}
}
