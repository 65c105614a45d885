package gateway

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestRefusedBodyAnswerReachesSendingClient: a Go client sending a 16 MiB body the gateway
// refuses without reading it (413 request_body_too_large on its Content-Length; 404
// no_route) gets the answer in every try, not `write: broken pipe`: the connection ends
// with the server's lingering close (docs/errors.md).
func TestRefusedBodyAnswerReachesSendingClient(t *testing.T) {
	const tries = 20
	tg := edgeGateway(t, testutil.Echo(t).Addr(), "", "match: {path_prefix: /up}, max_body_bytes: 1000")
	body := make([]byte, 16<<20)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct {
		name   string
		path   string
		status int
	}{
		{name: "request_body_too_large", path: "/up", status: 413},
		{name: "no_route", path: "/other", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.WantStatusEachTry(t, tries, tc.status, func() (*http.Response, error) {
				return client.Post("http://"+tg.addr+tc.path, "application/octet-stream", bytes.NewReader(body))
			})
		})
	}
}
