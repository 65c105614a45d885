package gateway

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

const corsConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: app
    targets:
      - address: {{backend}}
consumers:
  - name: web
    credentials:
      key-auth: {keys: ["web-key-0123456789ab"]}
routes:
  - id: api
    upstream: app
    plugins:
      - name: key-auth
      - name: cors
        config:
          allow_origins: ["https://app.example.com", "https://*.example.org"]
          allow_methods: [GET, POST, DELETE]
          allow_headers: [apikey, Content-Type]
          expose_headers: [X-Total-Count]
          allow_credentials: true
          max_age: 10m
`

// TestCORS: preflights are answered by the cors plugin even though key-auth, written first
// on the route, would refuse a request without a key (Kong/kong#1292); preflights for an
// origin, method or header not allowed are refused 403; actual requests from allowed origins
// get the CORS fields (the upstream's own replaced) on success and on a 401 alike.
func TestCORS(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*") // a backend's own, wrong for credentials
		w.Header().Set("X-Total-Count", "3")
		w.WriteHeader(200)
	}))
	t.Cleanup(be.Close)
	tg := startGateway(t, corsConfig, map[string]string{"backend": hostport(be)})
	c := newClient()
	preflight := func(origin, method, headers string) []string {
		h := []string{"Origin", origin, "Access-Control-Request-Method", method}
		if headers != "" {
			h = append(h, "Access-Control-Request-Headers", headers)
		}
		return h
	}
	cases := []struct {
		name    string
		method  string
		header  []string
		status  int
		reason  string
		want    map[string]string // response fields (""): absent
		wantAll map[string][]string
	}{
		{name: "preflight without key", method: "OPTIONS", header: preflight("https://app.example.com", "DELETE", "apikey, content-type"), status: 204,
			want: map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, POST, DELETE",
				"Access-Control-Allow-Headers": "apikey, Content-Type", "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "600", "Vary": "Origin"}},
		{name: "preflight wildcard subdomain", method: "OPTIONS", header: preflight("https://a.b.example.org", "GET", ""), status: 204,
			want: map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.org"}},
		{name: "preflight bare domain of wildcard", method: "OPTIONS", header: preflight("https://example.org", "GET", ""), status: 403, reason: "cors_forbidden",
			want: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "preflight other origin", method: "OPTIONS", header: preflight("https://evil.example", "GET", ""), status: 403, reason: "cors_forbidden"},
		{name: "preflight scheme differs", method: "OPTIONS", header: preflight("http://app.example.com", "GET", ""), status: 403, reason: "cors_forbidden"},
		{name: "preflight method not allowed", method: "OPTIONS", header: preflight("https://app.example.com", "PUT", ""), status: 403, reason: "cors_forbidden"},
		{name: "preflight header not allowed", method: "OPTIONS", header: preflight("https://app.example.com", "GET", "apikey, x-secret"), status: 403, reason: "cors_forbidden"},
		{name: "OPTIONS that is no preflight needs the key", method: "OPTIONS", header: []string{"Origin", "https://app.example.com"}, status: 401, reason: "auth_credentials_missing",
			want: map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"}},
		{name: "actual request", method: "GET", header: []string{"Origin", "https://app.example.com", "apikey", "web-key-0123456789ab"}, status: 200,
			want:    map[string]string{"Access-Control-Expose-Headers": "X-Total-Count", "Access-Control-Allow-Credentials": "true"},
			wantAll: map[string][]string{"Access-Control-Allow-Origin": {"https://app.example.com"}}},
		{name: "actual request without key: 401 readable by the script", method: "GET", header: []string{"Origin", "https://app.example.com"}, status: 401, reason: "auth_credentials_missing",
			want: map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "WWW-Authenticate": `Key realm="sluice"`}},
		{name: "actual request from other origin", method: "GET", header: []string{"Origin", "https://evil.example", "apikey", "web-key-0123456789ab"}, status: 200,
			wantAll: map[string][]string{"Access-Control-Allow-Origin": {"*"}, "Vary": {"Origin"}}}, // the backend's own is left alone
		{name: "no Origin: not CORS", method: "GET", header: []string{"apikey", "web-key-0123456789ab"}, status: 200,
			want: map[string]string{"Vary": "", "Access-Control-Allow-Credentials": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := send(t, c, tc.method, tg.url("/v1/items"), tc.header...)
			wantAnswer(t, resp, tc.status, tc.reason)
			for k, v := range tc.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.wantAll {
				if got := resp.Header.Values(k); !slices.Equal(got, v) {
					t.Errorf("%s = %q, want exactly %q", k, got, v)
				}
			}
		})
	}
	tg.accessLines(len(cases)) // every request finished (the counter is updated before its line)
	if got := pluginAnswers(t, tg, "api", "cors", "cors_preflight"); got != 2 {
		t.Errorf("sluice_plugin_answers_total{api, cors, cors_preflight} = %v, want 2", got)
	}
}
