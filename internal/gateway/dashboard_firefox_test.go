package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sluice/internal/testutil"
)

// firefoxPath finds Firefox (Debian's firefox-esr); without it the test is skipped loudly,
// or fails when SLUICE_REQUIRE_EXTERNAL=1 (scripts/test.sh sets it and installs it).
func firefoxPath(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "firefox not found: the dashboard's Firefox test needs it (apt-get install firefox-esr)"
	if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
	}
	fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// bidi is a minimal WebDriver BiDi client (the protocol Firefox speaks to automation; there
// is no chromedp for it): commands in order over one WebSocket, events ignored.
type bidi struct {
	t    *testing.T
	ws   *websocket.Conn
	next int
}

// dialBiDi waits for Firefox's remote agent on port and opens a session.
func dialBiDi(t *testing.T, port int) *bidi {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/session", port), nil)
		cancel()
		if err == nil {
			ws.SetReadLimit(8 << 20)
			b := &bidi{t: t, ws: ws}
			t.Cleanup(func() { ws.CloseNow() })
			b.call("session.new", map[string]any{"capabilities": map[string]any{}})
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("Firefox's WebDriver BiDi agent did not answer: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call sends a command and returns its result, failing the test on an error answer.
func (b *bidi) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.next++
	id := b.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		b.t.Fatalf("bidi %s: %v", method, err)
	}
	for {
		_, data, err := b.ws.Read(ctx)
		if err != nil {
			b.t.Fatalf("bidi %s: %v", method, err)
		}
		var m struct {
			ID      int             `json:"id"`
			Type    string          `json:"type"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
			Result  json.RawMessage `json:"result"`
		}
		if json.Unmarshal(data, &m) != nil || m.ID != id {
			continue // an event, or another command's answer
		}
		if m.Type == "error" {
			b.t.Fatalf("bidi %s: %s: %s", method, m.Error, m.Message)
		}
		return m.Result
	}
}

// eval evaluates expr (awaiting a promise) in context ctxID and returns its string value.
func (b *bidi) eval(ctxID, expr string) string {
	b.t.Helper()
	res := b.call("script.evaluate", map[string]any{"expression": expr, "awaitPromise": true,
		"target": map[string]any{"context": ctxID}})
	var r struct {
		Type             string `json:"type"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	json.Unmarshal(res, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("evaluate %s: %s", expr, r.ExceptionDetails.Text)
	}
	return fmt.Sprint(r.Result.Value)
}

// TestDashboardFirefox: the dashboard works in Firefox too (Debian's firefox-esr, headless,
// driven over WebDriver BiDi). Each page is opened, must render the same facts as in
// Chromium (the overview's version, the upstreams table's rows; an exception in a page's
// update leaves them empty) and must raise no uncaught JavaScript error (a listener
// installed before the app ran counts them).
func TestDashboardFirefox(t *testing.T) {
	ff := firefoxPath(t)
	e := startDashboard(t, "127.0.0.1:0", "")
	e.get(t, "/api/x") // one request, so the pool and traffic views have something

	port := testutil.FreePort(t)
	profile := t.TempDir()
	prefs := `user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("app.update.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("network.captive-portal-service.enabled", false);
user_pref("remote.active-protocols", 1);
`
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ff, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", strconv.Itoa(port), "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "HOME="+profile)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	b := dialBiDi(t, port)

	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	json.Unmarshal(b.call("browsingContext.getTree", map[string]any{}), &tree)
	if len(tree.Contexts) == 0 {
		t.Fatal("Firefox has no browsing context")
	}
	tab := tree.Contexts[0].Context
	// Count errors from the first script on: a preload script runs before the page's own.
	b.call("script.addPreloadScript", map[string]any{"functionDeclaration": `() => {
		window.__errors = [];
		addEventListener('error', ev => window.__errors.push(String(ev.message)));
		addEventListener('unhandledrejection', ev => window.__errors.push(String(ev.reason)));
	}`})

	var status struct {
		Version string `json:"version"`
	}
	adminGet(t, e.admin, "/admin/status", "", &status)
	pages := []struct {
		hash, ready, want string
	}{
		{"overview", `document.querySelector('main') ? document.querySelector('main').innerText : ''`, status.Version},
		{"upstreams", `document.querySelector('#targets-api') ? document.querySelector('#targets-api').innerText : ''`, "pool view"},
	}
	for _, p := range pages {
		b.call("browsingContext.navigate", map[string]any{"context": tab, "url": e.admin + "/ui/#" + p.hash, "wait": "complete"})
		b.call("browsingContext.reload", map[string]any{"context": tab, "wait": "complete"}) // the hash alone does not reload
		deadline := time.Now().Add(20 * time.Second)
		got := ""
		for time.Now().Before(deadline) {
			if got = b.eval(tab, p.ready); strings.Contains(got, p.want) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(got, p.want) {
			t.Errorf("%s page in Firefox shows %q, want it to contain %q", p.hash, got, p.want)
		}
		time.Sleep(1500 * time.Millisecond) // one more poll
		if errs := b.eval(tab, `JSON.stringify(window.__errors || ['no listener'])`); errs != "[]" {
			t.Errorf("%s page in Firefox raised: %s", p.hash, errs)
		}
	}
}
