package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// idleBackend starts a net/http server that closes connections idle for idle.
func idleBackend(t *testing.T, idle time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }),
		IdleTimeout: idle,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// writeConfig writes body to a config file in a temporary directory and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProbeConfig is the deployment gate: an upstream configured like the Higress incident
// (600s against a backend closing after 1s) is flagged and makes the exit status 1, one
// configured safely below its backend passes.
func TestProbeConfig(t *testing.T) {
	t.Parallel()
	risky, safe := idleBackend(t, time.Second), idleBackend(t, time.Second)
	cfg := writeConfig(t, fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: higress
    targets:
      - address: %s
    keepalive:
      idle_timeout: 600s
  - id: safe
    targets:
      - address: %s
    keepalive:
      idle_timeout: 500ms
routes:
  - id: a
    match: {path_prefix: /a/}
    upstream: higress
  - id: b
    upstream: safe
`, risky, safe))
	var out, errb bytes.Buffer
	code := run([]string{"probe", "-c", cfg, "-max-wait", "5s", "-json"}, &out, &errb)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var got struct {
		Failed    bool
		Upstreams []struct {
			Upstream string
			Failed   bool
			Targets  []struct {
				Risky   bool
				Problem string
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("JSON output: %v", err)
	}
	if !got.Failed || len(got.Upstreams) != 2 {
		t.Fatalf("got %+v, want failed with two upstreams", got)
	}
	h, s := got.Upstreams[0], got.Upstreams[1]
	if h.Upstream != "higress" || !h.Failed || !h.Targets[0].Risky || !strings.Contains(h.Targets[0].Problem, "keepalive.idle_timeout 600s is above 0.85 x") {
		t.Errorf("higress upstream not flagged as expected: %+v", h)
	}
	if s.Upstream != "safe" || s.Failed || s.Targets[0].Risky {
		t.Errorf("safe upstream flagged: %+v", s)
	}
}

func TestProbeExitStatus(t *testing.T) {
	t.Parallel()
	live := idleBackend(t, 300*time.Millisecond)
	okCfg := writeConfig(t, fmt.Sprintf("listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  - id: app\n    targets:\n      - address: %s\n    keepalive:\n      idle_timeout: 200ms\nroutes:\n  - id: all\n    upstream: app\n", live))
	deadCfg := writeConfig(t, fmt.Sprintf("listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  - id: app\n    targets:\n      - address: %s\n      - address: %s\n    keepalive:\n      idle_timeout: 200ms\nroutes:\n  - id: all\n    upstream: app\n", live, testutil.RefusingAddr(t)))
	cases := []struct {
		name string
		args []string
		code int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{name: "no target", args: nil, code: 2, err: "give exactly one URL, or -c FILE"},
		{name: "URL and -c", args: []string{"-c", okCfg, "http://" + live}, code: 2, err: "give exactly one URL"},
		{name: "ftp", args: []string{"ftp://" + live}, code: 2, err: "only http:// and https:// targets"},
		{name: "-insecure without https", args: []string{"-insecure", "http://" + live}, code: 2, err: "need an https:// URL"},
		{name: "bad flag", args: []string{"-nope"}, code: 2, err: "flag provided but not defined"},
		{name: "bad max-wait", args: []string{"-max-wait", "0s", live}, code: 2, err: "must be positive"},
		{name: "unreachable URL", args: []string{"http://" + testutil.RefusingAddr(t) + "/"}, code: 1, err: "connection refused"},
		{name: "URL, flags after it", args: []string{"http://" + live + "/health", "-max-wait", "3s"}, code: 0,
			out: "(GET /health, Host " + live + ")"},
		{name: "config ok", args: []string{"-c", okCfg, "-max-wait", "3s"}, code: 0, out: "0 of 1 upstreams with problems"},
		{name: "config with an unreachable target", args: []string{"-c", deadCfg, "-max-wait", "3s"}, code: 1, out: "UNREACHABLE"},
		{name: "config missing", args: []string{"-c", filepath.Join(t.TempDir(), "none.yaml")}, code: 1, err: "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(append([]string{"probe"}, tc.args...), &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("exit %d, want %d; stdout (want %q):\n%s\nstderr (want %q):\n%s", code, tc.code, tc.out, out.String(), tc.err, errb.String())
			}
		})
	}
}

func TestValidatePrintsWarnings(t *testing.T) {
	cfg := writeConfig(t, "listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  - id: app\n    targets:\n      - address: 127.0.0.1:9\n    keepalive:\n      learn: false\n      idle_timeout: 600s\nroutes:\n  - id: all\n    upstream: app\n")
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, want 0; stderr: %s", code, errb.String())
	}
	want := "warning: " + cfg + ":9: upstreams[0].keepalive.idle_timeout: 600s with learn: false"
	if !strings.Contains(out.String(), ": ok (") || !strings.Contains(out.String(), want) {
		t.Errorf("stdout:\n%s\nwant ok and %q", out.String(), want)
	}
}

// TestProbeTLS: `sluice probe` speaks TLS to https:// URLs (trust from -ca-file, or
// -insecure) and to TLS upstreams of a config (their own tls settings), and measures the idle
// timeout through TLS: a TLS backend closing idle connections after 300ms makes a 600s pool
// idle timeout risky.
func TestProbeTLS(t *testing.T) {
	t.Parallel()
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }),
		IdleTimeout: 300 * time.Millisecond,
		TLSConfig:   ca.ServerConfig(t, "127.0.0.1", "backend.test"),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	plain := idleBackend(t, 300*time.Millisecond)
	tlsCfg := func(target, tlsBlock, idle string) string {
		return writeConfig(t, fmt.Sprintf("listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  - id: app\n    targets:\n      - address: %s\n%s    keepalive:\n      idle_timeout: %s\nroutes:\n  - id: all\n    upstream: app\n", target, tlsBlock, idle))
	}
	caFile := ca.CAFile(t)
	cases := []struct {
		name string
		args []string
		code int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{name: "https URL, trusted", args: []string{"-ca-file", caFile, "-max-wait", "3s", "https://" + addr + "/"}, code: 0,
			out: "closes idle connections after"},
		{name: "https URL, insecure", args: []string{"-insecure", "-max-wait", "3s", "https://" + addr + "/"}, code: 0,
			out: "closes idle connections after"},
		{name: "https URL, untrusted", args: []string{"-max-wait", "3s", "https://" + addr + "/"}, code: 1, err: "tls handshake"},
		{name: "https URL, plain backend", args: []string{"-insecure", "-max-wait", "3s", "https://" + plain + "/"}, code: 1, err: "tls handshake"},
		{name: "config, https target, risky", args: []string{"-c", tlsCfg("https://"+addr, "    tls: {ca_file: "+caFile+", server_name: backend.test}\n", "600s"), "-max-wait", "3s"}, code: 1,
			out: "RISK: keepalive.idle_timeout 600s is above"},
		{name: "config, tls block, safe", args: []string{"-c", tlsCfg(addr, "    tls: {ca_file: "+caFile+"}\n", "200ms"), "-max-wait", "3s"}, code: 0,
			out: "0 of 1 upstreams with problems"},
		{name: "config, untrusted", args: []string{"-c", tlsCfg(addr, "    tls: {server_name: backend.test}\n", "200ms"), "-max-wait", "3s"}, code: 1,
			out: "tls handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(append([]string{"probe"}, tc.args...), &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("exit %d, want %d; stdout (want %q):\n%s\nstderr (want %q):\n%s", code, tc.code, tc.out, out.String(), tc.err, errb.String())
			}
		})
	}
}
