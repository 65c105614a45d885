package gateway

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/testutil"
)

// The connection-reuse torture (issue #20): real backends that close keep-alive connections
// idle for reuseT (Go net/http IdleTimeout, nginx keepalive_timeout, Node keepAliveTimeout)
// and a backend that races its idle timer (the failing case), behind a gateway configured as
// in the stale suite (upstream idle_timeout 600s). 16 sequential clients, each with an
// upstream (so a pool) of its own, pause 0.8-1.2 reuseT between requests, half GET, half POST:
// every reuse happens at an idle age near the backend's timeout. No client may see a failure
// and no request may run twice; and after the pools have learned (the second half of the run)
// few requests may wait for a connect of their own: the pool reuses up to its confident
// bound and preconnects the rest. bench/reuse.sh is the same scenario against the peers.

const reuseT = time.Second

// reuseBackend is a backend of the scenario: its address, and how many times it processed
// each X-Request-Id (read at the end).
type reuseBackend struct {
	addr      string
	processed func() map[string]int
}

// idCounter counts request ids for the backends that report them as they go.
type idCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *idCounter) add(id string) {
	c.mu.Lock()
	c.seen[id]++
	c.mu.Unlock()
}

func (c *idCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// goReuseBackend is a Go net/http server with IdleTimeout reuseT.
func goReuseBackend(t *testing.T) reuseBackend {
	ids := &idCounter{seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{IdleTimeout: reuseT, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		ids.add(r.Header.Get("X-Request-Id"))
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return reuseBackend{addr: ln.Addr().String(), processed: ids.snapshot}
}

// racingReuseBackend closes at reuseT and resets requests arriving in its last 100 ms.
func racingReuseBackend(t *testing.T) reuseBackend {
	b := testutil.RacingCloser(t, reuseT, 100*time.Millisecond)
	return reuseBackend{addr: b.Addr(), processed: func() map[string]int {
		m := map[string]int{}
		for _, id := range b.Duplicates() {
			m[id] = 2
		}
		return m
	}}
}

// requireExternal finds a server binary; without it the test is skipped loudly, or fails when
// SLUICE_REQUIRE_EXTERNAL=1 (scripts/test.sh sets it).
func requireExternal(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := strings.Join(names, " or ") + " not found: this test needs it"
	if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
	}
	fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// startExternal runs a server until the test ends and waits for addr to accept connections.
func startExternal(t *testing.T, addr string, name string, args ...string) {
	t.Helper()
	startExternalFiles(t, nil, name, args...)
	testutil.WaitFor(t, 10*time.Second, name+" listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startExternalFiles runs a server until the test ends, passing it files as fd 3 onwards.
func startExternalFiles(t *testing.T, files []*os.File, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// nginxReuseBackend is nginx with keepalive_timeout reuseT; request ids come from its
// access log.
func nginxReuseBackend(t *testing.T) reuseBackend {
	nginx := requireExternal(t, "/usr/sbin/nginx", "nginx")
	dir, addr := t.TempDir(), loopbackAddr(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
    log_format ids '$http_x_request_id';
    access_log %[1]s/ids.log ids;
    keepalive_timeout %[3]dms;
    client_body_temp_path %[1]s/body;
    server {
        listen %[2]s;
        location / { return 200 "ok\n"; }
    }
}
`, dir, addr, reuseT.Milliseconds())
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startExternal(t, addr, nginx, "-c", path, "-p", dir)
	return reuseBackend{addr: addr, processed: func() map[string]int {
		return countLines(t, filepath.Join(dir, "ids.log"))
	}}
}

// nodeReuseBackend is a Node http server with keepAliveTimeout reuseT (advertised as
// "Keep-Alive: timeout=1"; recent Node versions close a second later); it logs request ids
// to a file, one a line. Node serves a listener the test bound (fd 3): a port picked, closed
// and then bound again by Node could be taken in between by another test's listener (the
// gateway then proxied to that one, and got refused once it closed: a CI failure).
func nodeReuseBackend(t *testing.T) reuseBackend {
	node := requireExternal(t, "node", "nodejs")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // Node holds its own copy
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	script, ready := filepath.Join(dir, "server.js"), filepath.Join(dir, "ready")
	src := fmt.Sprintf(`const http = require('http');
const fs = require('fs');
const out = fs.openSync(%q, 'a');
const srv = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { fs.writeSync(out, (req.headers['x-request-id'] || '') + '\n'); res.end('ok\n'); });
});
srv.keepAliveTimeout = %d;
srv.listen({fd: 3}, () => fs.writeFileSync(%q, 'ok'));
`, filepath.Join(dir, "ids.log"), reuseT.Milliseconds(), ready)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	startExternalFiles(t, []*os.File{lf}, node, script)
	testutil.WaitFor(t, 10*time.Second, "node listening", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	addr := ln.Addr().String()
	return reuseBackend{addr: addr, processed: func() map[string]int {
		return countLines(t, filepath.Join(dir, "ids.log"))
	}}
}

// countLines counts each non-empty line of a file.
func countLines(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && l != "-" {
			m[l]++
		}
	}
	return m
}

// reuseCounts sums the pools' counters with the requests the clients sent.
type reuseCounts struct {
	requests int64
	c        connpool.Counters
}

func (r reuseCounts) sub(o reuseCounts) reuseCounts {
	return reuseCounts{requests: r.requests - o.requests, c: connpool.Counters{
		Opened: r.c.Opened - o.c.Opened, RequestPathConnects: r.c.RequestPathConnects - o.c.RequestPathConnects,
		Preconnects: r.c.Preconnects - o.c.Preconnects, PreconnectsUsed: r.c.PreconnectsUsed - o.c.PreconnectsUsed,
		PreconnectsWasted: r.c.PreconnectsWasted - o.c.PreconnectsWasted, Reused: r.c.Reused - o.c.Reused}}
}

func (r reuseCounts) per1000(n uint64) float64 {
	return 1000 * float64(n) / float64(max(r.requests, 1))
}

func (r reuseCounts) String() string {
	return fmt.Sprintf("%d requests: %.0f accepts and %.0f request-path connects per 1000; %d reused, %d preconnects (%d used, %d wasted)",
		r.requests, r.per1000(r.c.Opened), r.per1000(r.c.RequestPathConnects), r.c.Reused, r.c.Preconnects, r.c.PreconnectsUsed, r.c.PreconnectsWasted)
}

// runReuse runs the scenario's clients against addr for dur; it returns the client-visible
// failures and the counts of the first and the second half of the run.
func runReuse(t *testing.T, addr string, clients int, dur time.Duration) (failures []string, first, second reuseCounts) {
	t.Helper()
	var b strings.Builder
	b.WriteString("listeners: [{address: 127.0.0.1:0}]\nupstreams:\n")
	for i := range clients {
		fmt.Fprintf(&b, "  - id: u%d\n    targets: [{address: %q}]\n    keepalive: {idle_timeout: 600s}\n", i, addr)
	}
	b.WriteString("routes:\n")
	for i := range clients {
		fmt.Fprintf(&b, "  - id: r%d\n    match: {path_prefix: /c%d/}\n    upstream: u%d\n", i, i, i)
	}
	tg := startGateway(t, b.String(), nil)
	var requests atomic.Int64
	counts := func() reuseCounts {
		r := reuseCounts{requests: requests.Load()}
		for i := range clients {
			k := tg.gw.Current().Upstreams[fmt.Sprintf("u%d", i)].Current().Targets[0].Pool.Snapshot().Counters
			r.c.Opened += k.Opened
			r.c.RequestPathConnects += k.RequestPathConnects
			r.c.Preconnects += k.Preconnects
			r.c.PreconnectsUsed += k.PreconnectsUsed
			r.c.PreconnectsWasted += k.PreconnectsWasted
			r.c.Reused += k.Reused
		}
		return r
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	half := make(chan reuseCounts, 1)
	go func() {
		time.Sleep(dur / 2) // the measurement's split point, not synchronisation
		half <- counts()
	}()
	for i := range clients {
		wg.Go(func() {
			c := newClient()
			rng := rand.New(rand.NewPCG(uint64(i), 20))
			for n := 0; ; n++ {
				time.Sleep(reuseT*8/10 + time.Duration(rng.Int64N(int64(reuseT*4/10)))) // the workload's gap
				if time.Since(start) > dur {
					return
				}
				method, body := "GET", io.Reader(nil)
				if rng.IntN(2) == 0 {
					method, body = "POST", strings.NewReader("payload")
				}
				id := fmt.Sprintf("c%d-%d", i, n)
				req, _ := http.NewRequest(method, tg.url(fmt.Sprintf("/c%d/x", i)), body)
				req.Header.Set("X-Request-Id", id)
				requests.Add(1)
				resp, err := c.Do(req)
				why := ""
				switch {
				case err != nil:
					why = err.Error()
				case resp.StatusCode >= 500:
					why = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if why != "" {
					mu.Lock()
					failures = append(failures, method+" "+id+": "+why)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	first = <-half
	return failures, first, counts().sub(first)
}

func TestReuseTorture(t *testing.T) {
	dur := 16 * reuseT
	if testing.Short() {
		dur = 12 * reuseT
	}
	// pathBound bounds the request-path connects per 1000 requests in the second half of the
	// run, once the pools have learned. Measured (-race, 4 backends in parallel, shared
	// 2-core machine): see docs/benchmarks.md. Without preconnect every request whose gap
	// passes the effective idle timeout connects: 500-700 per 1000.
	const pathBound = 250
	cases := []struct {
		name    string
		backend func(t *testing.T) reuseBackend
		racing  bool
		// acceptBound, if > 0, bounds the backend's accepts per 1000 requests in the second
		// half: Node closes a second after the timeout it advertises, and once observed
		// closes prove that, the pool reuses up to them (nginx as a proxy accepts ~500 per
		// 1000 here; 1.2 x that is the bound). Measured: 39 (the header kept: ~1070).
		acceptBound int
	}{
		{name: "go net/http", backend: goReuseBackend},
		{name: "nginx", backend: nginxReuseBackend},
		{name: "node", backend: nodeReuseBackend, acceptBound: 600},
		{name: "racing timer", backend: racingReuseBackend, racing: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := tc.backend(t)
			failures, first, second := runReuse(t, be.addr, 16, dur)
			t.Logf("first half: %v", first)
			t.Logf("second half: %v", second)
			if len(failures) > 0 {
				t.Errorf("client-visible failures: %v", failures)
			}
			var dups []string
			for id, n := range be.processed() {
				if n > 1 {
					dups = append(dups, id)
				}
			}
			if len(dups) > 0 {
				t.Errorf("requests processed twice: %v", dups)
			}
			if tc.racing {
				return // the failing case: only correctness is asked of it
			}
			if p := second.per1000(second.c.RequestPathConnects); p > pathBound {
				t.Errorf("second half: %.0f request-path connects per 1000 requests, want at most %d (%v)", p, pathBound, second)
			}
			if a := second.per1000(second.c.Opened); tc.acceptBound > 0 && a > float64(tc.acceptBound) {
				t.Errorf("second half: %.0f accepts per 1000 requests, want at most %d (%v)", a, tc.acceptBound, second)
			}
		})
	}
}
