package forwardauth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// authServer is a real auth service: it allows "Bearer good", redirects "redirect", is slow
// for "slow", fails for "crash", and denies anything else with its own JSON body.
type authServer struct {
	*httptest.Server
	conns atomic.Int64
	last  atomic.Pointer[http.Request]
}

func newAuthServer(t testing.TB) *authServer {
	t.Helper()
	as := &authServer{}
	as.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.last.Store(r)
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("X-User-Id", "u-42")
			w.Header().Set("X-Not-Copied", "x")
			w.Write([]byte("ok"))
		case "redirect":
			http.Redirect(w, r, "https://login.test/?rd="+r.Header.Get("X-Forwarded-Uri"), http.StatusFound)
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "crash":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "big":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(strings.Repeat("x", 100<<10)))
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Internal", "secret")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"login required"}`))
		}
	}))
	as.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			as.conns.Add(1)
		}
	}
	as.Start()
	t.Cleanup(as.Close)
	return as
}

func newClient(t testing.TB, url string, mod func(*Options)) *Client {
	t.Helper()
	o := Options{URL: url, Timeout: 300 * time.Millisecond,
		ResponseHeaders: []string{"x-user-id", "X-Groups"},
		ClientHeaders:   []string{"WWW-Authenticate", "Location", "Set-Cookie"}}
	if mod != nil {
		mod(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func request(auth string) *Request {
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	h.Set("X-Forwarded-Uri", "/spoofed")
	h.Set("X-Forwarded-Prefix", "/spoofed")
	h.Set("Connection", "close")
	return &Request{Method: "POST", Proto: "https", Host: "api.test", URI: "/orders?id=7", ClientIP: "192.0.2.9", Header: h}
}

func TestCheck(t *testing.T) {
	as := newAuthServer(t)
	c := newClient(t, as.URL+"/verify", nil)
	tests := []struct {
		name   string
		auth   string
		code   string
		status int
		header map[string]string
		body   string
	}{
		{name: "allowed", auth: "Bearer good", code: CodeAllowed, header: map[string]string{"X-User-Id": "u-42", "X-Groups": "", "X-Not-Copied": ""}},
		{name: "denied with its own body", auth: "Bearer bad", code: CodeDenied, status: 401,
			header: map[string]string{"Www-Authenticate": `Bearer realm="test"`, "Content-Type": "application/json", "X-Internal": ""},
			body:   `{"error":"login required"}`},
		{name: "no credentials", code: CodeDenied, status: 401, body: `{"error":"login required"}`},
		{name: "redirect not followed", auth: "redirect", code: CodeDenied, status: 302,
			header: map[string]string{"Location": "https://login.test/?rd=/orders?id=7"}},
		{name: "5xx is unavailable", auth: "crash", code: CodeUnavailable, status: 503},
		{name: "slow is a timeout", auth: "slow", code: CodeTimeout, status: 504},
		{name: "denial body bounded", auth: "big", code: CodeDenied, status: 403, body: strings.Repeat("x", DefaultMaxBodyBytes)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			d := c.Check(context.Background(), request(tc.auth))
			if d.Code != tc.code || d.Status != tc.status {
				t.Fatalf("got %s %d (%v), want %s %d", d.Code, d.Status, d.Err, tc.code, tc.status)
			}
			for k, want := range tc.header {
				if got := d.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if tc.body != "" && string(d.Body) != tc.body {
				t.Errorf("body %.80q (%d bytes), want %.80q", d.Body, len(d.Body), tc.body)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("check took %v with a 300ms timeout", time.Since(start))
			}
		})
	}
	// What the auth service saw: the gateway's X-Forwarded-*, not the client's, and no
	// hop-by-hop header.
	c.Check(context.Background(), request("Bearer good"))
	r := as.last.Load()
	for k, want := range map[string]string{"Authorization": "Bearer good", "X-Forwarded-Method": "POST",
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.test", "X-Forwarded-Uri": "/orders?id=7",
		"X-Forwarded-For": "192.0.2.9", "X-Forwarded-Prefix": ""} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("auth service got %s %q, want %q", k, got, want)
		}
	}
	if r.Method != "GET" || r.URL.Path != "/verify" || r.Close {
		t.Errorf("auth request %s %s close=%v", r.Method, r.URL, r.Close)
	}
}

func TestCheckKeepAlive(t *testing.T) {
	as := newAuthServer(t)
	c := newClient(t, as.URL, nil)
	for range 50 {
		if d := c.Check(context.Background(), request("Bearer good")); d.Code != CodeAllowed {
			t.Fatal(d.Code, d.Err)
		}
		if d := c.Check(context.Background(), request("Bearer bad")); d.Code != CodeDenied {
			t.Fatal(d.Code, d.Err)
		}
	}
	if n := as.conns.Load(); n != 1 {
		t.Fatalf("100 sequential checks opened %d connections, want 1", n)
	}
}

func TestCheckDownAndDeadlines(t *testing.T) {
	dead := newClient(t, "http://"+testutil.RefusingAddr(t)+"/", nil)
	if d := dead.Check(context.Background(), request("Bearer good")); d.Code != CodeUnavailable || d.Status != 503 {
		t.Fatalf("auth service down: %s %d %v", d.Code, d.Status, d.Err)
	}
	as := newAuthServer(t)
	c := newClient(t, as.URL, func(o *Options) { o.Timeout = 10 * time.Second })
	// The request's own deadline is shorter than the configured timeout: it wins.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if d := c.Check(ctx, request("slow")); d.Code != CodeTimeout || d.Status != 504 {
		t.Fatalf("request deadline: %s %d", d.Code, d.Status)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("check outlived the request deadline: %v", el)
	}
	// A client that went away cancels the check.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if d := c.Check(ctx, request("slow")); d.Code != CodeCanceled {
		t.Fatalf("client gone: %s", d.Code)
	}
}

func TestNewErrors(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "http://", "://bad"} {
		if _, err := NewClient(Options{URL: u}); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
}
