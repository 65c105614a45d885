package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

// versionedConfig routes /v to the echo upstream and stamps the config version in a header.
// Even versions add a second route, odd ones remove it, so routes come and go.
func versionedConfig(addr string, backend string, v int) string {
	extra := ""
	if v%2 == 0 {
		extra = fmt.Sprintf(`
  - id: extra-%d
    match: {path: /extra}
    upstream: echo`, v)
	}
	return fmt.Sprintf(`
listeners: [{address: %q}]
upstreams: [{id: echo, targets: [{address: %q}]}]
routes:
  - id: v
    match: {path_prefix: /v}
    upstream: echo
    rewrite: {set_headers: {X-Config-Version: "%d"}}%s
`, addr, backend, v, extra)
}

// TestReloadUnderLoad reloads 20 times (one reload invalid) while clients send requests
// without pause: no request fails, and each one is served by the config current at its
// arrival, so the versions a sequential client sees never go backwards and never include the
// invalid one.
func TestReloadUnderLoad(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Version", r.Header.Get("X-Config-Version"))
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	addr := deadAddr(t) // a free port, kept across reloads
	tg := startGateway(t, versionedConfig(addr, hostport(be), 0), nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	total := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			last := -1
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/v")
				if err != nil {
					mu.Lock()
					total++
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				v, _ := strconv.Atoi(resp.Header.Get("X-Seen-Version"))
				mu.Lock()
				total++
				switch {
				case resp.StatusCode != 200:
					failures = append(failures, fmt.Sprintf("status %d %s", resp.StatusCode, resp.Header.Get("X-Sluice-Error")))
				case v < last:
					failures = append(failures, fmt.Sprintf("version went back from %d to %d", last, v))
				case v == 7:
					failures = append(failures, "served by the invalid config 7")
				}
				mu.Unlock()
				last = v
			}
		}()
	}
	// served waits until n more requests have ended: each config serves some.
	served := func(n int) {
		t.Helper()
		mu.Lock()
		want := total + n
		mu.Unlock()
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d requests", want), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return total >= want
		})
	}
	// The listener address must stay what it is: use the bound address in later configs.
	for v := 1; v <= 20; v++ {
		served(20)
		yaml := versionedConfig(addr, hostport(be), v)
		if v == 7 {
			yaml += "\n  - id: broken\n    upstream: nowhere\n"
			if _, err := config.Parse("bad.yaml", []byte(yaml)); err == nil {
				t.Fatal("config 7 should be invalid")
			}
			continue
		}
		if err := tg.gw.Apply(mustParse(t, yaml, nil)); err != nil {
			t.Fatalf("apply %d: %v", v, err)
		}
	}
	served(20)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", len(failures), total, failures[:min(5, len(failures))])
	}
	if got := tg.gw.Current().Config.Routes[0].Rewrite.SetHeaders["X-Config-Version"]; got != "20" {
		t.Errorf("current version = %s, want 20", got)
	}
	t.Logf("%d requests across 20 reloads, 0 failed", total)
}

// TestApplyRejectsUnbindableListener keeps the old config when a new listener cannot bind.
func TestApplyRejectsUnbindableListener(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	old := tg.gw.Current()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}, {address: %q}]
upstreams: [{id: echo, targets: [{address: %q}]}]
routes: [{id: all, upstream: echo}]
`, taken.Addr().String(), hostport(be)), nil)
	if err := tg.gw.Apply(bad); err == nil {
		t.Fatal("apply with an unbindable listener succeeded")
	}
	if tg.gw.Current() != old {
		t.Fatal("generation changed after a failed apply")
	}
	resp, err := http.Get(tg.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustStatus(t, resp, 200)
}

// TestShutdownDrainsInFlight: a request in flight when shutdown starts completes.
func TestShutdownDrainsInFlight(t *testing.T) {
	started := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond) // in flight while Shutdown starts: the case under test
		io.WriteString(w, "finished")
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(tg.url("/slow"))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{body: string(b)}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tg.gw.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-done
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if _, err := http.Get(tg.url("/")); err == nil {
		t.Fatal("gateway still accepts after shutdown")
	}
}

// TestShutdownClosesIdleKeepAlive: an idle client keep-alive connection does not hold up
// shutdown, whether it idles briefly or for longer.
func TestShutdownClosesIdleKeepAlive(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	for _, idle := range []time.Duration{0, 50 * time.Millisecond} {
		tg := startGateway(t, yaml, vars)
		c := newClient()
		resp, err := c.Get(tg.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(idle) // the idle time under test
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err = tg.gw.Shutdown(ctx)
		cancel()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("idle %v: shutdown took %v (err %v) with an idle keep-alive client", idle, time.Since(start), err)
		}
	}
}
