package gateway

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestGRPCWebNonGRPCAnswer: an answer of the backend that is not gRPC (an HTML 502 page as
// a proxy in front of the service makes, a plain-text 200) reaches a grpc-web client as it
// is, over HTTP/1.1 and h2c, for application/grpc-web+proto and -text: the backend's status,
// content-type, length and body, not base64-encoded. A grpc-web client reads a body by the
// response's content-type (base64 only for application/grpc-web-text, PROTOCOL-WEB.md) and
// maps the status of any other answer to a gRPC code; the base64 of an HTML page under
// text/html was garbage to it, and to anyone reading the page.
func TestGRPCWebNonGRPCAnswer(t *testing.T) {
	page := []byte("<html><body><h1>502 Bad Gateway</h1></body></html>\n")
	plain := []byte("not a gRPC answer\n")
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ct, status := plain, "text/plain; charset=utf-8", 200
		if r.URL.Path == "/html.Service/Call" {
			body, ct, status = page, "text/html", 502
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body)
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	tg := startGateway(t, grpcWebYAML, map[string]string{"backend": hostport(be)})
	clients := webClients()
	for _, client := range []string{"http1", "h2c"} {
		for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web-text+proto"} {
			for _, tc := range []struct {
				path, ct string
				status   int
				body     []byte
			}{
				{"/html.Service/Call", "text/html", 502, page},
				{"/plain.Service/Call", "text/plain; charset=utf-8", 200, plain},
			} {
				t.Run(client+"/"+ct+tc.path, func(t *testing.T) {
					body := webMsg("request")
					if ct == "application/grpc-web-text+proto" {
						body = []byte(base64.StdEncoding.EncodeToString(body))
					}
					resp, raw, err := webPost(t, clients[client], tg.url(tc.path), ct, body)
					if err != nil || resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ct ||
						resp.ContentLength != int64(len(tc.body)) || !bytes.Equal(raw, tc.body) {
						t.Fatalf("%d %q length %d body %q (read error %v); want the backend's answer as it is: %d %q length %d body %q",
							resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, raw, err, tc.status, tc.ct, len(tc.body), tc.body)
					}
				})
			}
		}
	}
}
