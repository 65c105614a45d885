package gateway

import (
	"testing"
	"time"
)

// TestTrailersForbiddenFieldsDropped: trailer fields that frame, route or describe the
// connection, and the gateway's own fields, are dropped both ways (RFC 9110 §6.5.1): a backend
// that merges trailers into the header section must not see a client's Host, Content-Length
// or X-Forwarded-For there, nor a client a backend's Set-Cookie or framing. What may be sent
// in trailers (a checksum) goes through, and so does the Trailer header, which is not
// hop-by-hop (RFC 9110 §6.6.2). A trailer name with an underscore is dropped as a header's
// would be (underscores_in_headers: drop).
func TestTrailersForbiddenFieldsDropped(t *testing.T) {
	be, got := recordingBackend(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
		"2\r\nok\r\n0\r\nX-Checksum: def\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n"+
		"Set-Cookie: a=b\r\nX-Request-Id: spoof\r\nX-Sluice-Error: no_route\r\n\r\n")
	tg := edgeGateway(t, be, "", "")

	out := rawExchange(t, tg.addr, "POST /t HTTP/1.1\r\nHost: h\r\nX-Request-Id: tr-1\r\nConnection: close\r\n"+
		"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\nHost: evil.example\r\nConnection: close\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\nX-Request-Id: spoof\r\nAuthorization: Basic eDp5\r\nX_Real_Ip: 6.6.6.6\r\n\r\n", 5*time.Second)

	wantBytes(t, "backend read", received(t, got), "POST /t HTTP/1.1\r\nHost: h\r\nTrailer: X-Checksum\r\n"+
		forwarded("h", "tr-1")+"Transfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n")
	wantBytes(t, "client got", out, "HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nX-Request-Id: tr-1\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"2\r\nok\r\n0\r\nX-Checksum: def\r\n\r\n")
	wantFields(t, tg.accessLines(1)[0], map[string]any{
		"status": 200, "dropped_request_trailers": 7, "dropped_response_trailers": 5,
	})
	waitMetric(t, tg, "sluice_dropped_fields_total", map[string]string{"section": "request_trailer"}, 7)
	waitMetric(t, tg, "sluice_dropped_fields_total", map[string]string{"section": "response_trailer"}, 5)
}
