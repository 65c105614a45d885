package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestMirrorCopyCarriesConsumer: on a mirrored route with an auth plugin, the copy is the
// request as the primary upstream gets it (docs/traffic.md: the head after the route's
// plugins): the key taken out, and X-Consumer-Name set to the consumer the plugin found,
// which the chain adds per attempt; never the client's own X-Consumer-Name.
func TestMirrorCopyCarriesConsumer(t *testing.T) {
	var mu sync.Mutex
	var names, keys []string
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		names = append(names, strings.Join(r.Header.Values("X-Consumer-Name"), ","))
		keys = append(keys, r.Header.Get("Apikey"))
		mu.Unlock()
	}))
	defer shadow.Close()
	primary := echoBackend(t, "primary")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: primary, targets: [{address: "{{primary}}"}]}
  - {id: shadow, targets: [{address: "{{shadow}}"}]}
consumers:
  - name: bob
    credentials:
      key-auth:
        keys: ["bob-key-0123456789ab"]
routes:
  - id: api
    upstream: primary
    mirror: {upstream: shadow}
    plugins: [{name: key-auth}]
`, map[string]string{"primary": hostport(primary), "shadow": hostport(shadow)})
	req, _ := http.NewRequest("GET", tg.url("/x"), nil)
	req.Header.Set("Apikey", "bob-key-0123456789ab")
	req.Header.Set("X-Consumer-Name", "alice")
	resp, info := getEcho(t, newClient(), req)
	if resp.StatusCode != 200 || strings.Join(info.Header["X-Consumer-Name"], ",") != "bob" {
		t.Fatalf("primary: status %d, X-Consumer-Name %q", resp.StatusCode, info.Header["X-Consumer-Name"])
	}
	testutil.WaitFor(t, 3*time.Second, "the copy", func() bool { mu.Lock(); defer mu.Unlock(); return len(names) == 1 })
	if names[0] != "bob" || keys[0] != "" {
		t.Errorf("copy: X-Consumer-Name %q, apikey %q; want bob and no key", names[0], keys[0])
	}
}
