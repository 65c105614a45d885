package gateway

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"sluice/internal/testutil"
)

// otlpReceiver is a real OTLP trace receiver on 127.0.0.1, built on the OTLP protobuf types:
// OTLP/HTTP (POST /v1/traces, protobuf bodies) and OTLP/gRPC (TraceService/Export). It keeps
// every span it receives, with its resource's service.name.
type otlpReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []gotSpan
	requests int
	headers  []http.Header // of each OTLP/HTTP export
}

// gotSpan is a received span, its ids in hex and its attributes as Go values.
type gotSpan struct {
	service, name, traceID, spanID, parentID string
	kind                                     tracepb.Span_SpanKind
	start, end                               time.Time
	attrs                                    map[string]any
	errStatus                                bool
}

// startOTLPHTTP serves OTLP/HTTP and returns the receiver and its traces URL.
func startOTLPHTTP(t testing.TB) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(req.Body)
		var msg coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		r.add(&msg)
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/v1/traces"
}

// startOTLPGRPC serves OTLP/gRPC and returns the receiver and its endpoint URL.
func startOTLPGRPC(t testing.TB) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(s, r)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return r, "http://" + ln.Addr().String()
}

// Export implements the OTLP/gRPC trace service.
func (r *otlpReceiver) Export(_ context.Context, msg *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	r.add(msg)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) add(msg *coltrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				g := gotSpan{service: service, name: s.GetName(), traceID: hex.EncodeToString(s.GetTraceId()),
					spanID: hex.EncodeToString(s.GetSpanId()), parentID: hex.EncodeToString(s.GetParentSpanId()),
					kind: s.GetKind(), start: time.Unix(0, int64(s.GetStartTimeUnixNano())),
					end: time.Unix(0, int64(s.GetEndTimeUnixNano())), attrs: map[string]any{},
					errStatus: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
				for _, kv := range s.GetAttributes() {
					g.attrs[kv.GetKey()] = anyValue(kv.GetValue())
				}
				r.spans = append(r.spans, g)
			}
		}
	}
}

// anyValue is an OTLP attribute value as a Go value (string, int64, float64 or bool).
func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	}
	return nil
}

// trace returns the spans received for trace id (hex).
func (r *otlpReceiver) trace(id string) []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []gotSpan
	for _, s := range r.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	return out
}

// all returns every span received.
func (r *otlpReceiver) all() []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gotSpan(nil), r.spans...)
}

// waitTrace waits until n spans of trace id arrived and returns them.
func (r *otlpReceiver) waitTrace(t testing.TB, id string, n int) []gotSpan {
	t.Helper()
	var got []gotSpan
	testutil.WaitFor(t, 5*time.Second, "spans of trace "+id, func() bool {
		got = r.trace(id)
		return len(got) >= n
	})
	return got
}
