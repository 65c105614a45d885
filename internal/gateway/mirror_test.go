package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// mirrorSeen is what a mirror target recorded of one copy.
type mirrorSeen struct {
	method, uri, body, mark, xff string
}

// recordingMirror is a mirror target that records every copy it gets.
func recordingMirror(t *testing.T) (addr string, seen func() []mirrorSeen) {
	t.Helper()
	var mu sync.Mutex
	var got []mirrorSeen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, mirrorSeen{r.Method, r.RequestURI, string(b), r.Header.Get("X-Sluice-Mirror"), r.Header.Get("X-Forwarded-For")})
		mu.Unlock()
		io.WriteString(w, "mirror answer, discarded")
	}))
	t.Cleanup(srv.Close)
	return hostport(srv), func() []mirrorSeen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

const mirrorConfig = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: primary, targets: [{address: "{{primary}}"}]}
  - id: shadow
    targets: [{address: "{{shadow}}"}]
    timeouts: {read: 30s}
routes:
  - id: mirrored
    match: {path_prefix: /m/}
    upstream: primary
    mirror: {upstream: shadow, {{mirror}}}
  - id: plain
    match: {path_prefix: /p/}
    upstream: primary
admin: {address: 127.0.0.1:0}
`

// mirrorResults returns sluice_mirror_requests_total of route "mirrored" by result.
func mirrorResults(t *testing.T, tg *testGateway) map[string]float64 {
	t.Helper()
	fams, _ := scrape(t, tg.adminURL("/metrics"))
	out := map[string]float64{}
	if mf := fams["sluice_mirror_requests_total"]; mf != nil {
		for _, m := range mf.Metric {
			if hasLabels(m, map[string]string{"route": "mirrored", "upstream": "shadow"}) {
				for _, lp := range m.Label {
					if lp.GetName() == "result" {
						out[lp.GetValue()] = m.Counter.GetValue()
					}
				}
			}
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// TestMirrorCopies: a mirrored request reaches the mirror with its method, path, query,
// body and X-Forwarded-For, marked X-Sluice-Mirror: 1; the client gets the primary's
// answer, and the primary never sees the mark. A percentage copies that share exactly.
func TestMirrorCopies(t *testing.T) {
	primary := newNamedBackend(t, "primary")
	shadow, seen := recordingMirror(t)
	tg := startGateway(t, mirrorConfig, map[string]string{"primary": primary.addr(), "shadow": shadow, "mirror": "percent: 100"})
	c := newClient()
	resp, err := c.Post(tg.url("/m/items?x=1"), "text/plain", strings.NewReader("hello mirror"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "primary" {
		t.Fatalf("client got %d %q, want the primary's 200", resp.StatusCode, body)
	}
	testutil.WaitFor(t, 3*time.Second, "the copy", func() bool { return len(seen()) == 1 })
	got := seen()[0]
	want := mirrorSeen{"POST", "/m/items?x=1", "hello mirror", "1", "127.0.0.1"}
	if got != want {
		t.Errorf("mirror got %+v, want %+v", got, want)
	}
	testutil.WaitFor(t, 3*time.Second, "the copy counted", func() bool { return mirrorResults(t, tg)["2xx"] == 1 })

	// 50%: of 200 requests, 100 copied (the sampling is a deterministic sequence).
	if err := tg.gw.Apply(mustParse(t, mirrorConfig, map[string]string{"primary": primary.addr(), "shadow": shadow, "mirror": "percent: 50"})); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustStatus(t, sendWithID(t, c, "GET", tg.url("/m/x"), nil, fmt.Sprint(i), false), 200)
	}
	testutil.WaitFor(t, 3*time.Second, "200 requests counted", func() bool { return sum(mirrorResults(t, tg)) == 201 })
	r := mirrorResults(t, tg)
	if r["2xx"] < 1+95 || r["2xx"] > 1+105 || r["sampled_out"] != 200-(r["2xx"]-1) {
		t.Errorf("at 50%%: results %v, want about 100 copies of 200", r)
	}
	testutil.WaitFor(t, 3*time.Second, "copies arrived", func() bool { return float64(len(seen())) == r["2xx"] })
}

// TestMirrorDeadTargetCostsNothing: a mirror target that never answers, or refuses
// connections, changes nothing for the primary: every request succeeds, none waits for the
// mirror (its read timeout is 30 s), latencies match an unmirrored route of the same
// backend measured side by side, and the copies are bounded (max_concurrent) and counted.
func TestMirrorDeadTargetCostsNothing(t *testing.T) {
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	silent := testutil.NewFaultBackend(t, func(*http.Request, int) testutil.Fault { return testutil.Fault{Wait: never} })
	for _, tc := range []struct {
		name   string
		shadow string
	}{
		{"never answers", silent.Addr()},
		{"refuses", testutil.RefusingAddr(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			primary := newNamedBackend(t, "primary")
			tg := startGateway(t, mirrorConfig, map[string]string{"primary": primary.addr(), "shadow": tc.shadow, "mirror": "max_concurrent: 4"})
			c := newClient()
			const n = 100
			var mirrored, plain []time.Duration
			body := strings.Repeat("b", 1024)
			for i := range n {
				for _, path := range []string{"/m/", "/p/"} {
					start := time.Now()
					var resp *http.Response
					if i%2 == 0 {
						resp = sendWithID(t, c, "GET", tg.url(path+"x"), nil, fmt.Sprint(i), false)
					} else {
						resp = sendWithID(t, c, "POST", tg.url(path+"x"), strings.NewReader(body), fmt.Sprint(i), false)
					}
					d := time.Since(start)
					mustStatus(t, resp, 200)
					if path == "/m/" {
						mirrored = append(mirrored, d)
					} else {
						plain = append(plain, d)
					}
				}
			}
			slices.Sort(mirrored)
			slices.Sort(plain)
			t.Logf("mirrored p50 %v max %v; plain p50 %v max %v", mirrored[n/2], mirrored[n-1], plain[n/2], plain[n-1])
			if mirrored[n-1] > 2*time.Second {
				t.Errorf("a mirrored request took %v: it waited for the mirror", mirrored[n-1])
			}
			if mirrored[n/2] > 3*plain[n/2]+5*time.Millisecond {
				t.Errorf("mirrored p50 %v against %v unmirrored", mirrored[n/2], plain[n/2])
			}
			var r map[string]float64
			if tc.name == "never answers" {
				// The first 4 copies hang (until the mirror's 30 s read timeout); every
				// later request finds max_concurrent reached and is dropped, at once.
				r = mirrorResults(t, tg)
				if r["dropped"] != n-4 || sum(r) != n-4 {
					t.Errorf("results %v, want %d dropped and nothing else yet", r, n-4)
				}
				if got := tg.gw.Current().traffic.mirrors[0].m.InFlight(); got != 4 {
					t.Errorf("%d copies in flight, want 4", got)
				}
				return
			}
			testutil.WaitFor(t, 5*time.Second, "every request counted", func() bool {
				r = mirrorResults(t, tg)
				return sum(r) == n
			})
			t.Logf("results %v", r)
			if r["upstream_connect_refused"]+r["dropped"] != n {
				t.Errorf("results %v, want %d refused or dropped", r, n)
			}
		})
	}
}

// TestMirrorBodies: bodies above max_body_bytes, and bodies of unknown length that had not
// all arrived when the request was forwarded, are not copied (counted body_too_large);
// the primary gets them whole all the same.
func TestMirrorBodies(t *testing.T) {
	primary := testutil.NewFaultBackend(t, nil)
	shadow, seen := recordingMirror(t)
	tg := startGateway(t, mirrorConfig, map[string]string{"primary": primary.Addr(), "shadow": shadow, "mirror": "max_body_bytes: 1000"})
	c := newClient()
	mustStatus(t, sendWithID(t, c, "POST", tg.url("/m/small"), strings.NewReader(strings.Repeat("s", 1000)), "small", false), 200)
	resp := sendWithID(t, c, "POST", tg.url("/m/big"), strings.NewReader(strings.Repeat("b", 1001)), "big", false)
	mustStatus(t, resp, 200)
	if got := resp.Header.Get("X-Got"); !strings.HasPrefix(got, "1001:") {
		t.Errorf("primary got %q of the big body", got)
	}
	// A chunked body whose second half comes 300 ms after the head: the primary is
	// forwarded at once and gets it all; the mirror gets nothing.
	cc := openConn(t, tg.addr)
	fmt.Fprint(cc, "POST /m/slow HTTP/1.1\r\nHost: t\r\nX-Request-Id: slow\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	time.Sleep(300 * time.Millisecond)
	fmt.Fprint(cc, "6\r\n world\r\n0\r\n\r\n")
	r2, err := cc.response()
	if err != nil || r2.StatusCode != 200 || !strings.HasPrefix(r2.Header.Get("X-Got"), "11:") {
		t.Fatalf("slow chunked body: %v %v", r2, err)
	}
	testutil.WaitFor(t, 3*time.Second, "three requests counted", func() bool { return sum(mirrorResults(t, tg)) == 3 })
	if r := mirrorResults(t, tg); r["2xx"] != 1 || r["body_too_large"] != 2 {
		t.Errorf("results %v, want 1 copy and 2 body_too_large", r)
	}
	if s := seen(); len(s) != 1 || s[0].uri != "/m/small" || len(s[0].body) != 1000 {
		t.Errorf("mirror got %v, want only /m/small with its 1000 bytes", s)
	}
}

// TestMirrorNeverRetried: copies are not retried even where the route retries its own
// requests: a mirror target that resets every request after reading it (the copy may
// have run) gets each request exactly once, while the primary's retry policy (3 attempts
// on reset_before_response) stays in force for the primary.
func TestMirrorNeverRetried(t *testing.T) {
	primary := newNamedBackend(t, "primary")
	resetting := testutil.NewFaultBackend(t, func(*http.Request, int) testutil.Fault { return testutil.Fault{Reset: true} })
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: primary, targets: [{address: "{{primary}}"}]}
  - {id: shadow, targets: [{address: "{{shadow}}"}], health_check: {passive: {enabled: false}}}
routes:
  - id: mirrored
    upstream: primary
    retry: {attempts: 3, on: [reset_before_response, connect_failure]}
    mirror: {upstream: shadow}
admin: {address: 127.0.0.1:0}
`, map[string]string{"primary": primary.addr(), "shadow": resetting.Addr()})
	c := newClient()
	const n = 20
	for i := range n {
		mustStatus(t, sendWithID(t, c, "GET", tg.url("/x"), nil, fmt.Sprintf("id-%d", i), false), 200)
	}
	testutil.WaitFor(t, 5*time.Second, "every copy counted", func() bool { return sum(mirrorResults(t, tg)) == n })
	for i := range n {
		if got := resetting.Started(fmt.Sprintf("id-%d", i)); got != 1 {
			t.Errorf("id-%d reached the mirror %d times, want 1", i, got)
		}
	}
	t.Logf("results %v", mirrorResults(t, tg))
}

// TestMirrorAllocations measures what a mirrored request allocates, the copy's own work
// included (testing.AllocsPerRun counts every goroutine), and bounds it; a route without a
// mirror stays at 0 (TestProxyPathAllocatesNothing).
func TestMirrorAllocations(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	addr := benchGateway(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: a, targets: [{address: "%s"}]}
  - {id: m, targets: [{address: "%s"}]}
log: {access: "off"}
admin: {enabled: false}
routes:
  - {id: api, upstream: a, mirror: {upstream: m}}
`, rawBackend(t), rawBackend(t)), true)
	c := dialClient(t, addr, "/x")
	defer c.conn.Close()
	allocs := roundTripAllocs(t, c)
	t.Logf("%.1f allocations per mirrored request", allocs)
	if allocs > 20 {
		t.Errorf("%.1f allocations per mirrored request, want at most 20", allocs)
	}
}
