package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

const forwardAuthConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
consumers:
  - name: alice
routes:
  - id: api
    match: {path_prefix: /api}
    upstream: echo
    plugins:
      - name: forward-auth
        config:
          address: {{auth}}/check
          timeout: 300ms
          request_headers: [Authorization, Cookie, X-Tenant]
          response_headers: [X-User-Id, X-Groups]
          client_headers: [WWW-Authenticate, Location, X-Auth-Reason]
          consumer_header: X-Auth-Consumer
  - id: down
    match: {path_prefix: /down}
    upstream: echo
    plugins:
      - name: forward-auth
        config:
          address: http://{{dead}}/check
`

// forwardAuthService is a real auth service for the gateway tests. It records what it got.
type forwardAuthService struct {
	*httptest.Server
	calls atomic.Int64
	last  atomic.Pointer[http.Header]
}

func newForwardAuthService(t *testing.T) *forwardAuthService {
	t.Helper()
	s := &forwardAuthService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		h := r.Header.Clone()
		h.Set("X-Seen-Path", r.URL.Path)
		s.last.Store(&h)
		switch r.Header.Get("Authorization") {
		case "Bearer alice":
			w.Header().Set("X-User-Id", "u-1")
			w.Header().Set("X-Groups", "staff")
			w.Header().Set("X-Auth-Consumer", "alice")
			w.Header().Set("X-Secret-Internal", "s")
		case "Bearer bob":
			w.Header().Set("X-User-Id", "u-2") // no X-Groups: the client's copy must not pass
		case "Bearer login":
			http.Redirect(w, r, "https://login.test/?rd="+r.Header.Get("X-Forwarded-Uri"), http.StatusFound)
		case "Bearer slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "Bearer crash":
			http.Error(w, "internal", http.StatusInternalServerError)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="corp"`)
			w.Header().Set("X-Auth-Reason", "no session")
			w.Header().Set("X-Not-Copied", "x")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"please log in"}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestForwardAuth: through the gateway, the auth service allows (its chosen headers reach
// the upstream, the client's forged copies do not; its consumer is identified), denies with
// its own status, body and chosen headers, redirects to a login page, fails (503
// auth_unavailable), is slow (504 auth_timeout within the configured timeout) or down.
func TestForwardAuth(t *testing.T) {
	be := echoBackend(t, "b")
	as := newForwardAuthService(t)
	tg := startGateway(t, forwardAuthConfig, map[string]string{"backend": hostport(be), "auth": as.URL,
		"dead": testutil.RefusingAddr(t)})
	c := newClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cases := []struct {
		name    string
		path    string
		auth    string
		status  int
		reason  string // X-Sluice-Error
		body    string
		headers map[string]string // on the response ("": absent)
		up      map[string]string // on the upstream request ("": absent)
		maxTime time.Duration
	}{
		{name: "allowed", path: "/api/orders?id=7", auth: "Bearer alice", status: 200,
			up: map[string]string{"X-User-Id": "u-1", "X-Groups": "staff", "X-Consumer-Name": "alice", "X-Secret-Internal": "", "Authorization": "Bearer alice"}},
		{name: "allowed, forged headers dropped", path: "/api/x", auth: "Bearer bob", status: 200,
			up: map[string]string{"X-User-Id": "u-2", "X-Groups": "", "X-Consumer-Name": ""}},
		{name: "denied with its own body", path: "/api/x", auth: "Bearer nobody", status: 401, body: `{"error":"please log in"}`,
			headers: map[string]string{"WWW-Authenticate": `Bearer realm="corp"`, "X-Auth-Reason": "no session",
				"Content-Type": "application/json", "X-Not-Copied": "", "X-Sluice-Error": ""}},
		{name: "login redirect", path: "/api/page", auth: "Bearer login", status: 302,
			headers: map[string]string{"Location": "https://login.test/?rd=/api/page"}},
		{name: "auth service fails", path: "/api/x", auth: "Bearer crash", status: 503, reason: "auth_unavailable"},
		{name: "auth service slow", path: "/api/x", auth: "Bearer slow", status: 504, reason: "auth_timeout", maxTime: 2 * time.Second},
		{name: "auth service down", path: "/down", auth: "Bearer alice", status: 503, reason: "auth_unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tg.url(tc.path), nil)
			req.Header.Set("Authorization", tc.auth)
			req.Header.Set("X-Tenant", "t9")
			req.Header.Set("X-Groups", "admin") // forged
			req.Header.Set("X-Forwarded-Uri", "/forged")
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.maxTime > 0 && time.Since(start) > tc.maxTime {
				t.Errorf("answered after %v", time.Since(start))
			}
			wantAnswer(t, resp, tc.status, tc.reason)
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			for k, want := range tc.headers {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("response %s = %q, want %q", k, got, want)
				}
			}
			if tc.up != nil {
				var info echoInfo
				if err := json.Unmarshal(body, &info); err != nil {
					t.Fatalf("bad echo body %q: %v", body, err)
				}
				for k, want := range tc.up {
					if got := strings.Join(info.Header[k], ","); got != want {
						t.Errorf("upstream %s = %q, want %q", k, got, want)
					}
				}
			}
		})
	}
	// What the auth service saw for the first request: the gateway's X-Forwarded-*, the
	// configured client headers, and not the others.
	lines := tg.accessLines(len(cases))
	if lines[0]["consumer"] != "alice" || lines[2]["plugin"] != "forward-auth" || lines[2]["status"] != 401.0 ||
		lines[4]["reason"] != "auth_unavailable" {
		t.Errorf("access log lines: %v\n%v\n%v", lines[0], lines[2], lines[4])
	}
	m := gathered(t, tg)
	for _, w := range []struct {
		place, outcome string
		n              float64
	}{{"api", "allowed", 2}, {"api", "denied", 2}, {"api", "unavailable", 1}, {"api", "timeout", 1}, {"down", "unavailable", 1}} {
		if v, _ := m.value("sluice_forward_auth_checks_total", map[string]string{"plugin": "forward-auth", "place": w.place, "outcome": w.outcome}); v != w.n {
			t.Errorf("sluice_forward_auth_checks_total{place=%q,outcome=%q} = %v, want %v", w.place, w.outcome, v, w.n)
		}
	}
	if v, _ := m.value("sluice_plugin_answers_total", map[string]string{"plugin": "forward-auth", "reason": "auth_denied"}); v != 2 {
		t.Errorf("plugin answers auth_denied = %v, want 2", v)
	}
	checkAuthRequest(t, tg, c, as)
}

// checkAuthRequest sends one request and checks the headers the auth service got.
func checkAuthRequest(t *testing.T, tg *testGateway, c *http.Client, as *forwardAuthService) {
	t.Helper()
	req, _ := http.NewRequest("POST", tg.url("/api/orders?id=7"), strings.NewReader("body"))
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Cookie", "sid=1")
	req.Header.Set("X-Tenant", "t9")
	req.Header.Set("X-Other", "o")
	req.Header.Set("X-Forwarded-Uri", "/forged")
	sendReq(t, c, req)
	h := *as.last.Load()
	for k, want := range map[string]string{"Authorization": "Bearer alice", "Cookie": "sid=1", "X-Tenant": "t9",
		"X-Other": "", "X-Forwarded-Method": "POST", "X-Forwarded-Proto": "http",
		"X-Forwarded-Host": strings.TrimPrefix(tg.url(""), "http://"), "X-Forwarded-Uri": "/api/orders?id=7",
		"X-Forwarded-For": "127.0.0.1", "X-Seen-Path": "/check"} {
		if got := h.Get(k); got != want {
			t.Errorf("auth service got %s %q, want %q", k, got, want)
		}
	}
}

// TestForwardAuthBadConfig: every problem is named by file:line, route, plugin and field.
func TestForwardAuthBadConfig(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets: [{address: 127.0.0.1:1}]
routes:
  - id: api
    upstream: echo
    plugins:
      - name: forward-auth
        config:
          address: ftp://auth/check
          request_headers: [Authorization, Connection]
          response_headers: ["X User"]
          require_consumer: true
`))
	if err == nil {
		err = New(testLogger(t), nil).Apply(cfg)
	}
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{
		`test.yaml:12: routes[0].plugins[0].config.address: route "api": plugin forward-auth: address "ftp://auth/check"`,
		`test.yaml:13: routes[0].plugins[0].config.request_headers[1]: route "api": plugin forward-auth: "Connection" is a connection or framing field`,
		`test.yaml:14: routes[0].plugins[0].config.response_headers[0]: route "api": plugin forward-auth: "X User" is not a valid header name`,
		`test.yaml:15: routes[0].plugins[0].config.require_consumer: route "api": plugin forward-auth: needs consumer_header`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
