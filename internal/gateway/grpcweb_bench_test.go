package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// BenchmarkGRPCWeb measures a unary call through a grpc_web route to a grpc-go server with
// one h2c client, as gRPC (passed through, trailers as HTTP trailers; also with a
// grpc-timeout, which bounds the attempt), grpc-web and grpc-web-text (translated): the
// difference is the translation's cost. Allocations are
// the whole process's (client, gateway, backend).
//
//	go test ./internal/gateway -run '^$' -bench GRPCWeb -count 3
func BenchmarkGRPCWeb(b *testing.B) {
	url := "http://" + benchGateway(b, strings.ReplaceAll(grpcWebYAML, "{{backend}}", grpcTestService(b)), false) + "/grpc.testing.TestService/UnaryCall"
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	m, _ := proto.Marshal(&testgrpc.SimpleRequest{ResponseSize: 100, Payload: payload(100)})
	frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(m)))
	frame = append(frame, m...)
	for _, tc := range []struct {
		name, ct string
		body     []byte
		timeout  string // grpc-timeout, none when empty
	}{
		{"grpc", "application/grpc+proto", frame, ""},
		{"grpc-timeout", "application/grpc+proto", frame, "10S"},
		{"grpc-web", "application/grpc-web+proto", frame, ""},
		{"grpc-web-text", "application/grpc-web-text+proto", []byte(base64.StdEncoding.EncodeToString(frame)), ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(tc.body))
				req.Header.Set("Content-Type", tc.ct)
				req.Header.Set("Te", "trailers")
				if tc.timeout != "" {
					req.Header.Set("Grpc-Timeout", tc.timeout)
				}
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
