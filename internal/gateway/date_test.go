package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestDateField: every final answer carries a Date (RFC 9110 §6.6.1), over HTTP/1.1 and
// HTTP/2 (h2c): the gateway's own answers (404 no_route, 502 from a refused target, a
// static-response plugin's answer) get the gateway's clock, a backend response without
// Date gets one added, and a backend's own Date passes unchanged.
func TestDateField(t *testing.T) {
	const backendDate = "Mon, 01 Jan 2001 00:00:00 GMT"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/app/nodate" {
			w.Header()["Date"] = nil // net/http then sends none
		} else {
			w.Header().Set("Date", backendDate)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - {id: app, targets: [{address: {{app}}}]}
  - {id: dead, targets: [{address: {{dead}}}]}
routes:
  - {id: app, match: {path_prefix: /app/}, upstream: app}
  - {id: dead, match: {path_prefix: /dead/}, upstream: dead}
  - id: static
    match: {path: /static}
    upstream: app
    plugins:
      - name: static-response
        config: {status: 200, body: "static\n"}
`, map[string]string{"app": hostport(be), "dead": testutil.RefusingAddr(t)})

	for _, c := range []struct {
		name   string
		client *http.Client
		proto  int
	}{{"http1", newClient(), 1}, {"h2c", h2cClient(), 2}} {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				path   string
				status int
				date   string // "": the gateway's clock
			}{
				{"/nothing", 404, ""},
				{"/dead/x", 502, ""},
				{"/static", 200, ""},
				{"/app/nodate", 200, ""},
				{"/app/dated", 200, backendDate},
			} {
				before := time.Now().Add(-time.Second).Truncate(time.Second)
				resp, err := c.client.Get(tg.url(tc.path))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				after := time.Now().Add(time.Second)
				got := resp.Header.Values("Date")
				if resp.ProtoMajor != c.proto || resp.StatusCode != tc.status || len(got) != 1 {
					t.Errorf("%s: %s %d, Date %q; want HTTP/%d %d with one Date", tc.path, resp.Proto, resp.StatusCode, got, c.proto, tc.status)
					continue
				}
				if tc.date != "" {
					if got[0] != tc.date {
						t.Errorf("%s: Date %q, want the backend's %q", tc.path, got[0], tc.date)
					}
					continue
				}
				d, err := http.ParseTime(got[0])
				if err != nil || len(got[0]) != len(http.TimeFormat) || d.Before(before) || d.After(after) {
					t.Errorf("%s: Date %q (%v), want an IMF-fixdate of now", tc.path, got[0], err)
				}
			}
		})
	}
}
