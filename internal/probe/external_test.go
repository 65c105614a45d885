package probe

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// external finds a server binary. Without it the test is skipped loudly, or fails when
// SLUICE_REQUIRE_EXTERNAL=1 (the README's test command sets it).
func external(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: this probe test needs it", strings.Join(names, " or "))
	if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
	}
	fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// nodeBackend starts a Node.js http server with keepAliveTimeout ms and returns its address
// and the extra time this Node.js version keeps idle connections beyond keepAliveTimeout:
// recent releases (v20.19+, v22, v24) add HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER (1s) to the
// socket timeout while still advertising keepAliveTimeout.
func nodeBackend(t *testing.T, keepAliveTimeout int) (string, time.Duration) {
	t.Helper()
	node := external(t, "node", "nodejs")
	script := filepath.Join(t.TempDir(), "server.js")
	src := fmt.Sprintf(`const http = require('http');
const server = http.createServer((req, res) => { res.end('ok\n'); });
server.keepAliveTimeout = %d;
let buffer = 0;
try {
  const m = /HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER\s*=\s*(\d+)/.exec(process.binding('natives')._http_server);
  if (m) buffer = Number(m[1]);
} catch (e) {}
server.listen(0, '127.0.0.1', () => { console.log('BUFFER ' + buffer); console.log('PORT ' + server.address().port); });
`, keepAliveTimeout)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	type started struct {
		port   string
		buffer time.Duration
	}
	ready := make(chan started, 1)
	go func() {
		var s started
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if b, ok := strings.CutPrefix(sc.Text(), "BUFFER "); ok {
				ms, _ := strconv.Atoi(b)
				s.buffer = time.Duration(ms) * time.Millisecond
			}
			if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
				s.port = p
				ready <- s
			}
		}
	}()
	select {
	case s := <-ready:
		t.Logf("node %s: keep-alive timeout buffer %s", node, s.buffer)
		return "127.0.0.1:" + s.port, s.buffer
	case <-time.After(10 * time.Second):
		t.Fatal("node did not print its port within 10s")
	}
	return "", 0
}

// nginxBackend starts nginx with the given http-level directives and returns its address.
func nginxBackend(t *testing.T, directives string) string {
	t.Helper()
	nginx := external(t, "/usr/sbin/nginx", "nginx")
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    %[2]s
    server {
        listen %[3]s;
        location / { return 200 "ok\n"; }
    }
}
`, dir, directives, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", path, "-p", dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitListening(t, addr, func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(log)
	})
	return addr
}

// waitListening polls until addr accepts connections, for at most 10s.
func waitListening(t *testing.T, addr string, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s is not listening after 10s\n%s", addr, diag())
}

func TestProbeExternalBackends(t *testing.T) {
	t.Parallel()
	cases := []backendCase{
		{name: "node keepAliveTimeout 1500", addr: func(t *testing.T, tc *backendCase) string {
			addr, buffer := nodeBackend(t, 1500)
			tc.idle += buffer
			return addr
		},
			maxWait: 10 * time.Second, keepsAlive: true, idle: 1500 * time.Millisecond},
		{name: "nginx keepalive_timeout 2s keepalive_requests 50", addr: func(t *testing.T, _ *backendCase) string {
			return nginxBackend(t, "keepalive_timeout 2s;\n    keepalive_requests 50;")
		}, maxWait: 10 * time.Second, keepsAlive: true, idle: 2 * time.Second, limit: 50, signalled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, tc)
		})
	}
}
