package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"sluice/internal/h2pool"
	"sluice/internal/upstream"
)

// GRPCProbe checks a target with the gRPC health protocol (grpc.health.v1.Health/Check for
// the server as a whole, service ""), as one stream on the target's HTTP/2 pool: healthy
// when the call ends with grpc-status 0 and the answer's status is SERVING. The messages are
// encoded by hand (an empty request; a response whose field 1 is the status enum), so the
// gateway needs no gRPC library.
type GRPCProbe struct{}

// grpcHealthRequest is a gRPC message frame (not compressed, length 0) holding an empty
// HealthCheckRequest.
var grpcHealthRequest = []byte{0, 0, 0, 0, 0}

// Check implements upstream.Checker.
func (GRPCProbe) Check(ctx context.Context, t *upstream.Target) error {
	if t.H2 == nil {
		return errors.New("grpc check: the upstream's protocol is not h2 or h2c")
	}
	scheme := "http"
	if t.H2.TLS() {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, "POST", scheme+"://"+t.Addr+"/grpc.health.v1.Health/Check", bytes.NewReader(grpcHealthRequest))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	var a h2pool.Attempt
	resp, err := t.H2.RoundTrip(req, &a)
	if err != nil {
		return fmt.Errorf("grpc check: %w", err)
	}
	defer t.H2.Done(&a)
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return fmt.Errorf("grpc check: reading the answer: %w", err)
	}
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status") // trailers-only
	}
	if resp.StatusCode != 200 || st != "0" {
		return fmt.Errorf("grpc check: HTTP %d, grpc-status %q %s", resp.StatusCode, st, resp.Trailer.Get("Grpc-Message"))
	}
	// 5-byte frame header, then HealthCheckResponse: field 1 varint (tag 0x08), SERVING = 1.
	if len(body) < 7 || body[5] != 0x08 || body[6] != 1 {
		return fmt.Errorf("grpc check: not SERVING (answer % x)", body)
	}
	return nil
}
