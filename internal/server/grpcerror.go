package server

// Gateway-generated errors towards gRPC and grpc-web clients: a trailers-only answer
// (status 200, grpc-status and grpc-message in the head and no body) instead of the JSON
// body, on HTTP/2 (Stream.WriteErrorFields) and, for grpc-web, on HTTP/1.1 too
// (Exchange.WriteErrorFields). docs/http2.md#grpc and #grpc-web.

import (
	"bytes"
	"strconv"
	"strings"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

const (
	ctGRPC        = "application/grpc"
	ctGRPCWeb     = "application/grpc-web"
	ctGRPCWebText = "application/grpc-web-text"
)

// grpcWebType is the content-type of a gateway error's answer to a grpc-web request whose
// content-type is ct: the request's own media type (application/grpc-web or
// application/grpc-web-text, with any +suffix; parameters dropped, lower case), which is
// what its client decodes. It is "" for any other request.
func grpcWebType(ct []byte) string {
	if !h1.HasMediaType(ct, ctGRPCWeb) && !h1.HasMediaType(ct, ctGRPCWebText) {
		return ""
	}
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(string(bytes.TrimRight(ct, " \t")))
}

// grpcErrorHead adds the fields of a trailers-only gRPC answer to e to h: content-type ct,
// grpc-status (reason.GRPCStatus) and grpc-message (the reason code, then ": detail" when
// detail is given, percent-encoded). It returns the grpc-status, which the access log
// shows ([Served].ErrorGRPCStatus).
func grpcErrorHead(h *h1.Header, e *reason.Error, detail, ct string) int {
	msg := string(e.Code)
	if detail != "" {
		msg += ": " + detail
	}
	code := reason.GRPCStatus(e)
	h.Add("Content-Type", ct)
	h.Add("Grpc-Status", strconv.Itoa(code))
	h.Add("Grpc-Message", reason.GRPCMessage(msg))
	return code
}

// errorGRPCStatus is the grpc-status of the gateway's own gRPC error answer
// (grpcErrorHead), kept plus one so that the zero value (a reset exchange or stream) says
// none: [Served]'s ErrorGRPCStatus.
type errorGRPCStatus int16

func (g *errorGRPCStatus) set(code int)    { *g = errorGRPCStatus(code + 1) }
func (g errorGRPCStatus) get() (int, bool) { return int(g) - 1, g != 0 }
