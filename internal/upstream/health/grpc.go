package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"sluice/internal/h2pool"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// GRPCProbe checks a target with the gRPC health protocol (grpc.health.v1.Health/Check) as
// one stream on the target's HTTP/2 pool: healthy when the call ends with grpc-status 0 and
// the answer's status is SERVING. Service is the service asked about ("" for the server as a
// whole). The two messages are encoded with protowire (HealthCheckRequest: field 1, the
// service name; HealthCheckResponse: field 1, the status enum), so the gateway needs no
// generated code. Host is the call's :authority ("" : the target's address), for a backend
// that routes by it.
type GRPCProbe struct {
	Service string
	Host    string
}

// grpc.health.v1 HealthCheckResponse.ServingStatus values (health.proto).
var servingStatus = map[uint64]string{0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

// grpcNotFound is the grpc-status (NOT_FOUND) a health server answers Check with for a
// service it does not know.
const grpcNotFound = "5"

// unprocessedTries is how many streams one check sends when the backend did not process
// them: the proxy's rule (one try and two re-sends, the last on a new connection).
const unprocessedTries = 3

// Check implements upstream.Checker.
func (g GRPCProbe) Check(ctx context.Context, t *upstream.Target) error {
	if t.H2 == nil {
		return errors.New("grpc check: the upstream's protocol is not h2 or h2c")
	}
	scheme := "http"
	if t.H2.TLS() {
		scheme = "https"
	}
	// A stream the backend provably did not process (REFUSED_STREAM, above a GOAWAY's
	// last-stream-id: its connection is being retired) says nothing about its health: the
	// check is sent again, as the proxy sends such a request again, the last time on a new
	// connection.
	var a h2pool.Attempt
	var resp *http.Response
	for try := range unprocessedTries {
		req, err := http.NewRequestWithContext(ctx, "POST", scheme+"://"+t.Addr+"/grpc.health.v1.Health/Check", bytes.NewReader(g.request()))
		if err != nil {
			return err
		}
		if g.Host != "" {
			req.Host = g.Host
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		a = h2pool.Attempt{Fresh: try == unprocessedTries-1}
		resp, err = t.H2.RoundTrip(req, &a)
		if err == nil {
			break
		}
		if re := (*reason.Error)(nil); errors.As(err, &re) && !re.Code.TargetFault() {
			// Not the target's failure (reason.Code.TargetFault): every stream the pool may
			// open is a call in progress, the target is busy (and marking it down would pile
			// its calls on the others).
			return fmt.Errorf("grpc check%s: %w: %w", g.of(), ErrNoVerdict, err)
		}
		if !errors.Is(err, h2pool.ErrUnprocessed) || try == unprocessedTries-1 {
			return fmt.Errorf("grpc check%s: %w", g.of(), err)
		}
	}
	defer t.H2.Done(&a)
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return fmt.Errorf("grpc check%s: reading the answer: %w", g.of(), err)
	}
	st := resp.Trailer.Get("Grpc-Status")
	msg := resp.Trailer.Get("Grpc-Message")
	if st == "" { // trailers-only
		st, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	switch {
	case resp.StatusCode != 200:
		return fmt.Errorf("grpc check%s: HTTP %d", g.of(), resp.StatusCode)
	case st == grpcNotFound:
		return fmt.Errorf("grpc check%s: SERVICE_UNKNOWN (grpc-status 5 NOT_FOUND: the server does not know the service) %s", g.of(), msg)
	case st != "0":
		return fmt.Errorf("grpc check%s: grpc-status %q %s", g.of(), st, msg)
	}
	status, err := parseHealthResponse(body)
	if err != nil {
		return fmt.Errorf("grpc check%s: %w", g.of(), err)
	}
	if status != 1 {
		name, ok := servingStatus[status]
		if !ok {
			name = strconv.FormatUint(status, 10)
		}
		return fmt.Errorf("grpc check%s: %s", g.of(), name)
	}
	return nil
}

// of names the service in errors.
func (g GRPCProbe) of() string {
	if g.Service == "" {
		return ""
	}
	return " of service " + strconv.Quote(g.Service)
}

// request is the gRPC message frame (not compressed) of a HealthCheckRequest for g.Service.
func (g GRPCProbe) request() []byte {
	var m []byte
	if g.Service != "" {
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendString(m, g.Service)
	}
	f := make([]byte, 5, 5+len(m))
	binary.BigEndian.PutUint32(f[1:], uint32(len(m)))
	return append(f, m...)
}

// parseHealthResponse returns the status of the HealthCheckResponse in body, one gRPC
// message frame. An absent status field is UNKNOWN (0), as proto3 encodes it.
func parseHealthResponse(body []byte) (uint64, error) {
	if len(body) < 5 {
		return 0, fmt.Errorf("answer of %d bytes, shorter than a gRPC message header", len(body))
	}
	if body[0] != 0 {
		return 0, fmt.Errorf("compressed answer (flag %d), not asked for", body[0])
	}
	n := binary.BigEndian.Uint32(body[1:5])
	m := body[5:]
	if uint32(len(m)) != n {
		return 0, fmt.Errorf("answer message of %d bytes, its header says %d", len(m), n)
	}
	var status uint64
	for len(m) > 0 {
		num, typ, k := protowire.ConsumeTag(m)
		if k < 0 {
			return 0, fmt.Errorf("answer message: %w", protowire.ParseError(k))
		}
		m = m[k:]
		if num == 1 && typ == protowire.VarintType {
			v, k := protowire.ConsumeVarint(m)
			if k < 0 {
				return 0, fmt.Errorf("answer status: %w", protowire.ParseError(k))
			}
			status, m = v, m[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(num, typ, m)
		if k < 0 {
			return 0, fmt.Errorf("answer field %d: %w", num, protowire.ParseError(k))
		}
		m = m[k:]
	}
	return status, nil
}
