package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

// The dashboard's browser tests: a real headless Chromium (Debian's chromium package)
// driven by chromedp loads /ui/ from a gateway's admin listener. With -update they also
// write the screenshots in docs/dashboard/.

var update = flag.Bool("update", false, "rewrite the dashboard screenshots in docs/dashboard/")

// chromiumPath finds Chromium; without it the test is skipped loudly, or fails when
// SLUICE_REQUIRE_EXTERNAL=1 (scripts/test.sh sets it and installs chromium).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "chromium not found: the dashboard browser tests need it (apt-get install chromium)"
	if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
	}
	fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium tab, with every URL it requested.
type browser struct {
	ctx  context.Context
	t    *testing.T
	mu   sync.Mutex
	urls []string
	errs []string // JavaScript exceptions
}

// jsErrors fails the test if the page threw.
func (b *browser) jsErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		b.t.Errorf("the page threw: %s", e)
	}
	b.errs = nil
}

// newBrowser starts Chromium with a fresh profile. The flags keep it off the network
// (no QUIC, no background or component updates, no sync) on this closed machine.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 860),
	}
	b := &browser{t: t}
	listen := chromedp.WithListener(func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	})
	// The whole browser lives at most two minutes: a hung page cannot hang the test run.
	bctx, cancelTimeout := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(bctx, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, listen)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelTimeout() })
	b.ctx = ctx
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return b
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err == nil {
		err = json.Unmarshal(v, out)
	}
	if err != nil {
		b.t.Fatalf("chromium: evaluate %s: %v", expr, err)
	}
}

// waitJS polls until the expression is true (bounded).
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("Boolean("+expr+")")); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body.innerText"))
			b.jsErrors()
			b.t.Fatalf("waiting for %s: %s still false; page:\n%s", what, expr, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// open navigates to a dashboard page and waits for a render after now.
func (b *browser) open(url string) {
	b.t.Helper()
	b.run(chromedp.Navigate("about:blank"), chromedp.Navigate(url)) // a new document, not a hash change
	b.fresh()
}

// fresh waits for the page to render once more (a poll that began after this call).
func (b *browser) fresh() {
	b.t.Helper()
	var n int
	b.eval("Number(document.body.dataset.renders || 0)", &n)
	b.waitJS("a fresh render", fmt.Sprintf("Number(document.body.dataset.renders || 0) >= %d", n+2))
}

// pause stops the page's polling, so what it shows and what the API answers next are the
// same moment when nothing changes in between.
func (b *browser) pause() {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.CSS("#pause")))
	b.waitJS("paused", `document.getElementById('pause').getAttribute('aria-pressed') === 'true'`)
}

func (b *browser) resume() {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.CSS("#pause")))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf("(document.querySelector(%q) || {}).innerText || ''", sel), &s)
	return strings.TrimSpace(s)
}

// screenshot writes docs/dashboard/name.png with -update.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if !*update {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("chromium: screenshot: %v", err)
	}
	path := filepath.Join("..", "..", "docs", "dashboard", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// adminGet GETs an admin endpoint (with key when given) and decodes the JSON.
func adminGet(t *testing.T, base, path, key string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// dashboardConfig: "api" keeps connections (an echo backend), "idle" closes connections
// idle for 300 ms (testutil.IdleCloser), "dead" refuses every dial.
const dashboardConfig = `
listeners:
  - address: 127.0.0.1:0
    name: public
upstreams:
  - id: api
    targets: [{address: "{{api}}", weight: 3}]
  - id: idle
    targets: [{address: "{{idle}}"}]
  - id: dead
    targets: [{address: "{{dead}}"}]
  - id: learn
    targets: [{address: "{{learn}}"}]
routes:
  - id: users
    match: {path_prefix: /api/users/}
    upstream: api
  - id: api
    match: {path_prefix: /api/}
    upstream: api
  - id: idle
    match: {path_prefix: /idle/}
    upstream: idle
  - id: dead
    match: {path: /dead}
    upstream: dead
  - id: learn
    match: {path_prefix: /learn/}
    upstream: learn
  - id: urgent
    priority: 10
    match: {path: /urgent, methods: [POST]}
    upstream: api
admin:
  address: {{admin}}
  api_key: "{{key}}"
`

type dashboardEnv struct {
	tg    *testGateway
	admin string // http://127.0.0.1:port
	idle  *testutil.Backend
	log   *syncBuffer
}

func startDashboard(t *testing.T, adminAddr, key string) *dashboardEnv {
	t.Helper()
	idle := testutil.IdleCloser(t, 300*time.Millisecond)
	vars := map[string]string{"api": testutil.Echo(t).Addr(), "idle": idle.Addr(),
		"dead": testutil.RefusingAddr(t), "admin": adminAddr, "key": key,
		"learn": testutil.AdvertisingCloser(t, 1, time.Second).Addr()}
	cfg := mustParse(t, dashboardConfig, vars)
	logBuf := &syncBuffer{}
	gw := New(slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err := gw.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	tg := &testGateway{gw: gw, t: t}
	for _, a := range gw.Addrs() {
		tg.addr = a.String()
	}
	_, port, _ := strings.Cut(gw.AdminAddr().String(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(gw.AdminAddr().String(), ":")
	}
	return &dashboardEnv{tg: tg, admin: "http://127.0.0.1:" + port, idle: idle, log: logBuf}
}

func (e *dashboardEnv) get(t *testing.T, path string) int {
	t.Helper()
	resp, err := http.Get(e.tg.url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDashboardPages loads every page in Chromium and checks that what it shows is what
// the admin API says at the same moment; the pool timeline must show the connection the
// idle backend closed at 300 ms idle, with its reason.
func TestDashboardPages(t *testing.T) {
	b := newBrowser(t)
	e := startDashboard(t, "127.0.0.1:0", "")
	// Traffic: 2xx on two routes, a 404 (no route) and 502s (refused dials).
	for i := range 6 {
		e.get(t, fmt.Sprintf("/api/users/%d", i))
	}
	e.get(t, "/api/x")
	e.get(t, "/nowhere")
	e.get(t, "/dead")
	e.get(t, "/dead")
	// A rejected reload, as the config watcher reports one.
	_, err := config.Parse("sluice.yaml", []byte("routes:\n  - id: x\n    upstream: nope\n"))
	if err == nil {
		t.Fatal("bad config parsed")
	}
	e.tg.gw.ReloadFailed(err)

	t.Run("overview", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		if *update {
			scene(t, e, b)
		}
		b.open(e.admin + "/ui/#overview")
		b.waitJS("two traffic samples", `document.querySelector('#ov-errors') && document.querySelector('#ov-errors').innerText.includes('no_route')`)
		b.pause()
		var st struct {
			Version string
			Config  struct{ Version string }
		}
		adminGet(t, e.admin, "/admin/status", "", &st)
		if got := b.text("#ov-version"); got != st.Version {
			t.Errorf("version on page %q, API %q", got, st.Version)
		}
		if got := b.text("#ov-config"); got != st.Config.Version[:12] {
			t.Errorf("config version on page %q, API %q", got, st.Config.Version)
		}
		if got := b.text("#ov-listeners"); !strings.Contains(got, e.tg.addr) {
			t.Errorf("listeners table %q lacks the bound address %s", got, e.tg.addr)
		}
		var tr struct {
			ErrorsTotal map[string]int `json:"errors_total"`
		}
		adminGet(t, e.admin, "/admin/traffic", "", &tr)
		if !*update && (tr.ErrorsTotal["no_route"] != 1 || tr.ErrorsTotal["upstream_connect_refused"] != 2) {
			t.Errorf("API errors_total %v, want no_route 1 and upstream_connect_refused 2", tr.ErrorsTotal)
		}
		for code, n := range tr.ErrorsTotal {
			row := b.rowText("#ov-errors", code)
			if !strings.HasSuffix(row, "\t"+strconv.Itoa(n)) {
				t.Errorf("errors row for %s is %q; the API says %d since start", code, row, n)
			}
		}
		reloads := b.text("#ov-reloads")
		if !strings.Contains(reloads, "rejected") || !strings.Contains(reloads, `unknown upstream "nope"`) {
			t.Errorf("reloads table does not show the rejected reload and why:\n%s", reloads)
		}
		b.screenshot("overview")
		b.resume()
	})

	t.Run("routes", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		b.open(e.admin + "/ui/#routes")
		b.pause()
		var order struct {
			Routes []struct{ ID, Upstream string }
		}
		adminGet(t, e.admin, "/admin/routes/order", "", &order)
		var tr struct {
			Routes map[string]struct{ Total int }
		}
		adminGet(t, e.admin, "/admin/traffic", "", &tr)
		var ids []string
		b.eval(`[...document.querySelectorAll('#routes-table tbody tr')].map(r => r.dataset.route)`, &ids)
		want := []string{"urgent", "dead", "users", "learn", "idle", "api"} // exact, then the longer prefix
		if strings.Join(ids, " ") != strings.Join(want, " ") {
			t.Errorf("routes on page in order %v, want %v", ids, want)
		}
		for i, r := range order.Routes {
			if i < len(ids) && ids[i] != r.ID {
				t.Errorf("row %d is %s, API order says %s", i, ids[i], r.ID)
			}
			row := b.rowText("#routes-table", r.ID)
			if cells := strings.Split(row, "\t"); len(cells) < 5 || cells[4] != strconv.Itoa(tr.Routes[r.ID].Total) {
				t.Errorf("route %s row %q: requests column should be %d", r.ID, row, tr.Routes[r.ID].Total)
			}
		}
		if !*update && tr.Routes["users"].Total != 6 {
			t.Errorf("API: route users total %d, want 6", tr.Routes["users"].Total)
		}
		b.screenshot("routes")
		b.resume()
	})

	t.Run("upstreams", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		b.open(e.admin + "/ui/#upstreams")
		b.pause()
		var ups struct {
			Upstreams []struct {
				ID      string
				Targets []struct {
					Address   string
					Weight    int
					Health    string
					InFlight  int `json:"in_flight"`
					Failures  int `json:"consecutive_failures"`
					Ejections int `json:"ejections"`
					Idle      int `json:"idle_connections"`
				}
			}
		}
		adminGet(t, e.admin, "/admin/upstreams", "", &ups)
		for _, u := range ups.Upstreams {
			for _, tg := range u.Targets {
				cells := strings.Split(b.rowText("#targets-"+u.ID, tg.Address), "\t")
				if len(cells) < 7 || cells[2] != strconv.Itoa(tg.Weight) || cells[3] != strconv.Itoa(tg.InFlight) ||
					cells[4] != strconv.Itoa(tg.Failures) || cells[5] != strconv.Itoa(tg.Ejections) ||
					!strings.Contains(cells[1], tg.Health) || (u.ID == "api" && cells[6] != strconv.Itoa(tg.Idle)) {
					t.Errorf("upstream %s target %s: page row %q; API weight %d health %s in flight %d failures %d ejections %d idle %d",
						u.ID, tg.Address, cells, tg.Weight, tg.Health, tg.InFlight, tg.Failures, tg.Ejections, tg.Idle)
				}
			}
		}
		b.screenshot("upstreams")
		b.resume()
	})

	t.Run("pool", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		b.open(e.admin + "/ui/#pool/idle")
		// One request opens a connection; one 150 ms later reuses it; the backend then
		// closes it at 300 ms idle and the pool records backend_closed_idle.
		// The timeline is built from polls; one between the requests (as the page's would
		// be, but without waiting for it) makes the reuse's time exact.
		e.get(t, "/idle/1")
		testutil.WaitFor(t, 2*time.Second, "the connection back in the pool", func() bool {
			var v struct {
				Targets []struct{ Connections []struct{ State string } }
			}
			adminGet(t, e.admin, "/admin/upstreams/idle/timeline", "", &v)
			cs := v.Targets[0].Connections
			return len(cs) == 1 && cs[0].State == "idle"
		})
		time.Sleep(150 * time.Millisecond)
		e.get(t, "/idle/2")
		adminGet(t, e.admin, "/admin/upstreams/idle/timeline", "", nil)
		b.waitJS("the closed connection", `document.querySelector('[id$="-conns"]') && document.querySelector('[id$="-conns"]').innerText.includes('backend_closed_idle')`)
		e.get(t, "/idle/3") // a new connection: opened 2, reused 1
		b.fresh()
		b.pause()
		var tl struct {
			Targets []struct {
				Opened, Reused int
				StaleCaught    int `json:"stale_caught"`
				Connections    []struct {
					ID         int
					Reason     string
					ClosedIdle float64 `json:"closed_idle_seconds"`
					Reuses     []struct {
						IdleAge float64 `json:"idle_age_seconds"`
						Exact   bool
					}
				}
			}
		}
		adminGet(t, e.admin, "/admin/upstreams/idle/timeline", "", &tl)
		tt := tl.Targets[0]
		if len(tt.Connections) != 2 || tt.Opened != 2 || tt.Reused != 1 {
			t.Fatalf("API timeline: %d connections, opened %d, reused %d; want 2, 2, 1: %+v", len(tt.Connections), tt.Opened, tt.Reused, tt)
		}
		c := tt.Connections[0] // the first, closed by the backend
		if c.Reason != "backend_closed_idle" || c.ClosedIdle < 0.28 || c.ClosedIdle > 0.8 {
			t.Errorf("API: connection closed %s at idle %.3f s; want backend_closed_idle at about 0.3 s", c.Reason, c.ClosedIdle)
		}
		if len(c.Reuses) != 1 || !c.Reuses[0].Exact || c.Reuses[0].IdleAge < 0.14 || c.Reuses[0].IdleAge > 0.4 {
			t.Errorf("API: reuses %+v; want one exact reuse at about 0.15 s idle", c.Reuses)
		}
		row := strings.Split(b.rowText(`[id$="-conns"]`, strconv.Itoa(c.ID)), "\t")
		wantIdle := fmt.Sprintf("%d ms", int(math.Round(c.ClosedIdle*1000)))
		wantReuse := fmt.Sprintf("%d ms", int(math.Round(c.Reuses[0].IdleAge*1000)))
		if len(row) < 8 || row[6] != "backend_closed_idle" || row[7] != wantIdle || row[4] != wantReuse || row[3] != "2" {
			t.Errorf("connection row on page %q; want 2 requests, reuse %s, reason backend_closed_idle, idle at close %s", row, wantReuse, wantIdle)
		}
		var svgText string
		b.eval(`[...document.querySelectorAll('figure svg g[data-conn] text')].map(t => t.textContent).join('|')`, &svgText)
		if !strings.Contains(svgText, "backend_closed_idle (idle "+wantIdle+")") || !strings.Contains(svgText, wantReuse) {
			t.Errorf("timeline SVG labels %q lack the close reason with idle %s or the reuse at %s", svgText, wantIdle, wantReuse)
		}
		for id, want := range map[string]int{"opened": tt.Opened, "reused": tt.Reused, "stale": tt.StaleCaught} {
			if got := b.text(fmt.Sprintf(`[id$="-%s"]`, id)); got != strconv.Itoa(want) {
				t.Errorf("pool card %s on page %q, API %d", id, got, want)
			}
		}
		b.screenshot("pool-closed")
		b.resume()

	})

	t.Run("probe", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		b.open(e.admin + "/ui/#probe")
		b.run(chromedp.SetValue(chromedp.CSS("#probe-target"), "idle "+e.idle.Addr()),
			chromedp.SetValue(chromedp.CSS(`#probe-form input[name="wait"]`), "3"),
			chromedp.SetValue(chromedp.CSS(`#probe-form input[name="reqs"]`), "20"),
			chromedp.Click(chromedp.CSS("#probe-run")))
		b.waitJS("the probe result", `document.querySelector('#probe-cards')`)
		cards := b.text("#probe-cards")
		if !strings.Contains(cards, "Keeps connections alive\nyes") {
			t.Errorf("probe result lacks keep-alive yes:\n%s", cards)
		}
		// The backend closes at 300 ms; the probe measures it to within its resolution.
		var ms float64
		for _, line := range strings.Split(cards, "\n") {
			if v, ok := strings.CutSuffix(line, " ms"); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil && ms == 0 {
					ms = f
				}
			}
		}
		if ms < 250 || ms > 600 {
			t.Errorf("probe idle timeout on page %.0f ms, the backend closes at 300 ms:\n%s", ms, cards)
		}
		b.screenshot("probe")
	})

	t.Run("keyboard", func(t *testing.T) {
		b.t = t
		defer b.jsErrors()
		b.open(e.admin + "/ui/#overview")
		// Tab reaches the skip link first, then the page links in order; Enter follows one.
		var focused []string
		for range 3 {
			b.run(chromedp.KeyEvent("\t"))
			var s string
			b.eval(`document.activeElement.getAttribute('href') || document.activeElement.id`, &s)
			focused = append(focused, s)
		}
		if strings.Join(focused, " ") != "#main #overview #routes" {
			t.Errorf("Tab focuses %v, want the skip link, then Overview, then Routes", focused)
		}
		b.run(chromedp.KeyEvent("\r"))
		b.waitJS("the routes page", `document.body.dataset.page === 'routes' && document.querySelector('#routes-table')`)
		var current string
		b.eval(`document.querySelector('nav a[aria-current="page"]').innerText`, &current)
		if current != "Routes" {
			t.Errorf("the current page link is %q, want Routes", current)
		}
	})

	b.t = t
	for _, u := range b.urls {
		if !strings.HasPrefix(u, e.admin+"/") {
			t.Errorf("the page requested %s: nothing but the admin listener may be asked", u)
		}
	}
}

// rowText returns the tab-separated cells of the row in table sel whose text has key.
func (b *browser) rowText(sel, key string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(() => { const t = document.querySelector(%q); if (!t) return '';
		const rows = [...t.querySelectorAll('tbody tr')];
		const cells = r => [...r.children].map(c => c.innerText.trim()).join('\t');
		for (const r of rows) if (r.dataset.conn === %q || r.dataset.target === %q || r.dataset.route === %q) return cells(r);
		for (const r of rows) if ([...r.children].some(c => c.innerText.trim() === %q)) return cells(r);
		return ''; })()`, sel, key, key, key, key), &s)
	return s
}

// TestDashboardKey: with an API key (the admin listener on all interfaces, which config
// validation allows only with one), the page asks for the key; the data endpoints refuse
// requests without it; the key travels only in a header, never in a URL, and is not
// logged; a wrong key is refused.
func TestDashboardKey(t *testing.T) {
	const key = "dashboard-test-key-5e1f0c9a7b"
	b := newBrowser(t)
	e := startDashboard(t, "0.0.0.0:0", key)
	if code := adminGet(t, e.admin, "/admin/status", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /admin/status without the key: %d, want 401", code)
	}
	if code := adminGet(t, e.admin, "/admin/upstreams/idle/timeline", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET the timeline without the key: %d, want 401", code)
	}
	// The page itself holds no data and loads without the key; it then shows the form.
	b.run(chromedp.Navigate(e.admin + "/ui/#overview"))
	b.waitJS("the key form", `!document.getElementById('login').hidden`)
	if got := b.text("#main"); strings.Contains(got, "Version") {
		t.Errorf("data shown without the key: %q", got)
	}
	b.screenshot("login")
	b.run(chromedp.SendKeys(chromedp.CSS("#key"), "wrong-key-0000000000"), chromedp.Click(chromedp.CSS("#login-form button")))
	b.waitJS("the refusal", `document.getElementById('login-error').innerText.includes('refused')`)
	b.run(chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS("#login-form button")))
	b.waitJS("the overview", `document.querySelector('#ov-version')`)
	var stored struct{ Session, Local string }
	b.eval(`({session: sessionStorage.getItem('sluice.apiKey') || '', local: JSON.stringify(localStorage)})`, &stored)
	if stored.Session != key || strings.Contains(stored.Local, key) {
		t.Errorf("key in sessionStorage %q, localStorage %q: want it in the tab's session only", stored.Session, stored.Local)
	}
	var href string
	b.eval("location.href", &href)
	for _, u := range append(b.urls, href) {
		if strings.Contains(u, key) || strings.Contains(u, "key=") {
			t.Errorf("the key is in a URL: %s", u)
		}
	}
	if strings.Contains(e.log.String(), key) {
		t.Errorf("the key is in the gateway's log")
	}
	if !bytes.Contains([]byte(e.log.String()), []byte("admin")) {
		t.Errorf("the gateway log is empty; the check above proves nothing")
	}
}

// scene sends a few seconds of varied traffic for the screenshots (-update only): requests
// at changing rates, some gateway errors, and on "learn" (a backend advertising
// Keep-Alive: timeout=1) bursts with pauses, so its pool opens, reuses and retires
// connections at several idle ages. The pool page is open meanwhile, as its timeline is
// built from the polls.
func scene(t *testing.T, e *dashboardEnv, b *browser) {
	b.open(e.admin + "/ui/#pool/learn")
	var wg sync.WaitGroup
	stop := time.Now().Add(12 * time.Second)
	wg.Go(func() {
		for i := 0; time.Now().Before(stop); i++ {
			e.get(t, fmt.Sprintf("/api/users/%d", i))
			if i%25 == 0 {
				e.get(t, "/dead")
			}
			time.Sleep(time.Duration(10+(i/40)%4*15) * time.Millisecond)
		}
	})
	gaps := []time.Duration{200, 600, 1300, 300, 900, 150, 1500, 400, 700, 250, 1100, 500}
	for _, gap := range gaps {
		var burst sync.WaitGroup
		for j := range 1 + int(gap)%3 {
			burst.Go(func() { e.get(t, fmt.Sprintf("/learn/%d", j)) })
		}
		burst.Wait()
		time.Sleep(gap * time.Millisecond)
	}
	wg.Wait()
	b.fresh()
	b.screenshot("pool")
}
