package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/plugin"
	"sluice/internal/testutil"
)

// logCounter counts its Log calls and the statuses seen; panicky panics in the transform stage
// when the request path is /panic.
type logCounter struct{ calls, lastStatus atomic.Int64 }

func (l *logCounter) Log(_ *plugin.Request, status int) {
	l.calls.Add(1)
	l.lastStatus.Store(int64(status))
}

type panicky struct{}

func (panicky) Request(r *plugin.Request) error {
	if r.Path() == "/panic" {
		panic("a plugin bug")
	}
	return nil
}

var testLogCounter = &logCounter{}

func init() {
	plugin.Register(plugin.Kind{Name: "test-log-counter", New: func(*plugin.Build) (any, error) { return testLogCounter, nil }})
	plugin.Register(plugin.Kind{Name: "test-panicky", Stage: plugin.StageTransform, New: func(*plugin.Build) (any, error) { return panicky{}, nil }})
}

// TestPluginLogPhaseAlwaysRuns: the log phase runs once per request, for a request a plugin
// refused, one proxied, and one whose chain panicked (answered 502 internal_error): the
// contract a concurrency limit relies on to give its slot back.
func TestPluginLogPhaseAlwaysRuns(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, pluginConfigBase+`
routes:
  - id: api
    upstream: echo
    plugins:
      - name: test-log-counter
      - name: test-panicky
      - name: ip-restriction
        config: {deny: [127.0.0.2]}
  - id: refused
    match: {path: /refused}
    upstream: echo
    plugins:
      - name: test-log-counter
      - name: ip-restriction
        config: {allow: [192.0.2.1]}
`, map[string]string{"backend": hostport(be)})
	c := newClient()
	before := testLogCounter.calls.Load()
	for _, tc := range []struct {
		path   string
		status int
		reason string
		logged int64
	}{
		{"/ok", 200, "", 200},
		{"/refused", 403, "ip_forbidden", 403},
		{"/panic", 502, "internal_error", 0},
	} {
		want := testLogCounter.calls.Load() + 1
		resp, _ := send(t, c, "GET", tg.url(tc.path))
		wantAnswer(t, resp, tc.status, tc.reason)
		// The log phase runs after the response went out: wait for it.
		testutil.WaitFor(t, 3*time.Second, tc.path+": the log phase", func() bool { return testLogCounter.calls.Load() >= want })
		if got := testLogCounter.lastStatus.Load(); got != tc.logged {
			t.Errorf("%s: Log saw status %d, want %d", tc.path, got, tc.logged)
		}
	}
	if n := testLogCounter.calls.Load() - before; n != 3 {
		t.Errorf("Log ran %d times for 3 requests", n)
	}
}
