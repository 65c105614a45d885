package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTrafficBinary runs the binary with a route split 90/10 (plus a weight-0 share whose
// address refuses connections) and mirrored to a target that never answers: 10,000
// requests from 4 clients all succeed, the canary's share is within 2 points of 10%, the
// weight-0 share gets nothing, the dead mirror sheds its copies (counted) without slowing
// anyone, and the admin API shows the split. A config with a bad split does not validate,
// naming file:line and field.
func TestTrafficBinary(t *testing.T) {
	var stable, canary atomic.Int64
	backend := func(n *atomic.Int64) string {
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Write([]byte("ok"))
		}))
		t.Cleanup(be.Close)
		return strings.TrimPrefix(be.URL, "http://")
	}
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	silent := testutil.NewFaultBackend(t, func(*http.Request, int) testutil.Fault { return testutil.Fault{Wait: never} })
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
listeners: [{address: %q}]
upstreams:
  - {id: stable, targets: [{address: %q}]}
  - {id: canary, targets: [{address: %q}]}
  - {id: dark, targets: [{address: %q}]}
  - {id: shadow, targets: [{address: %q}], timeouts: {read: 60s}}
admin: {address: %q}
log: {access: "off"}
routes:
  - id: api
    split:
      upstreams:
        - {upstream: canary, weight: 10}
        - {upstream: stable, weight: 90}
        - {upstream: dark, weight: 0}
    mirror: {upstream: shadow, max_concurrent: 2}
`, listen, backend(&stable), backend(&canary), testutil.RefusingAddr(t), silent.Addr(), admin)), 0o644)
	start(t, "run", "-c", path)
	url := "http://" + listen + "/v1"
	testutil.WaitFor(t, 5*time.Second, "listening", func() bool { _, _, _, err := get(url); return err == nil })
	base := stable.Load() + canary.Load()

	const n, workers = 10000, 4
	var wg sync.WaitGroup
	var failed, slow atomic.Int64
	for w := range workers {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for range n / workers {
				start := time.Now()
				resp, err := c.Get(fmt.Sprintf("%s?w=%d", url, w))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				if time.Since(start) > 2*time.Second {
					slow.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || slow.Load() != 0 {
		t.Errorf("%d requests failed, %d took over 2s", failed.Load(), slow.Load())
	}
	s, k := stable.Load(), canary.Load()
	if s+k-base != n {
		t.Errorf("backends got %d requests, want %d", s+k-base, n)
	}
	if share := 100 * float64(k) / float64(s+k); math.Abs(share-10) > 2 {
		t.Errorf("canary share %.2f%%, want 10 ± 2 (stable %d, canary %d)", share, s, k)
	}
	t.Logf("stable %d, canary %d", s, k)

	_, _, metrics, err := get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `sluice_mirror_requests_total{result="dropped",route="api",upstream="shadow"}`) {
		t.Errorf("no dropped mirror copies in the metrics:\n%s", grepLines(metrics, "sluice_mirror"))
	}
	if strings.Contains(metrics, `upstream="dark"`) && !strings.Contains(metrics, `sluice_requests_total{code_class="2xx",route="api",upstream="dark"} 0`) {
		t.Errorf("dark (weight 0) served requests:\n%s", grepLines(metrics, `upstream="dark"`))
	}
	_, _, routes, err := get("http://" + admin + "/admin/routes")
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Routes []struct {
			Split struct {
				Upstreams []struct {
					Upstream string `json:"upstream"`
					Weight   int    `json:"weight"`
				} `json:"upstreams"`
			} `json:"split"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(routes), &view); err != nil || len(view.Routes) != 1 ||
		fmt.Sprint(view.Routes[0].Split.Upstreams) != "[{canary 10} {stable 90} {dark 0}]" {
		t.Errorf("/admin/routes does not show the split (%v): %s", err, routes)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{id: a, targets: [{address: "127.0.0.1:9000"}]}]
routes:
  - id: r
    split:
      upstreams:
        - {upstream: a, weight: -1}
        - {upstream: gone}
`), 0o644)
	cmd := exec.Command(binary, "validate", "-c", bad)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("bad split accepted: %s", out)
	}
	for _, want := range []string{"bad.yaml:7: routes[0].split.upstreams[0].weight: must not be negative", `bad.yaml:8: routes[0].split.upstreams[1].upstream: unknown upstream "gone"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}
