package cluster_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/cluster"
	"sluice/internal/testutil"
)

// TestSecretsRedacted: a consumer's API key (the consumer stored as an object of its own,
// consumers/<name>) and a jwt-auth HMAC secret stored in etcd are
// redacted in the admin API's GET of the object and in `pull` (unless asked for), exactly
// as /admin/config redacts them, and never reach the node's log; a body or file that holds
// the placeholder cannot be written back over the secrets.
func TestSecretsRedacted(t *testing.T) {
	const key, hmac = "web-4b8e2d7a9c1f3e6a", "hs256-0123456789abcdef0123456789"
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/x/upstreams/app", upstreamJSON("app", be.Addr()))
	put(t, cli, "/x/consumers/web", `{"name":"web","credentials":{"key-auth":{"keys":["`+key+`"]}}}`)
	put(t, cli, "/x/routes/r", `{"id":"r","upstream":"app","plugins":[{"name":"key-auth"}]}`)
	put(t, cli, "/x/routes/j", `{"id":"j","match":{"path_prefix":"/j"},"upstream":"app","plugins":[{"name":"jwt-auth","config":{"algorithms":["HS256"],"keys":[{"secret":"`+hmac+`"}]}}]}`)
	n, err := startNode(t, nodeFile(t, e, "/x"))
	if err != nil {
		t.Fatal(err)
	}
	status := func(path string, hdr ...string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+n.addr+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status("/x"); code != 401 {
		t.Fatalf("without the key: %d, want 401 (the consumer is not in force)", code)
	}

	leaks := func(where, s string) {
		t.Helper()
		if strings.Contains(s, key) || strings.Contains(s, hmac) {
			t.Errorf("%s shows a secret:\n%s", where, s)
		}
	}
	get := call(t, n, "GET", "/admin/consumers/web", "")
	leaks("GET /admin/consumers/web", get.raw)
	if get.status != 200 || !strings.Contains(get.raw, "<redacted>") {
		t.Errorf("GET /admin/consumers/web: %d %s", get.status, get.raw)
	}
	getJ := call(t, n, "GET", "/admin/routes/j", "")
	leaks("GET /admin/routes/j", getJ.raw)
	if getJ.status != 200 || !strings.Contains(getJ.raw, "<redacted>") {
		t.Errorf("GET /admin/routes/j: %d %s", getJ.status, getJ.raw)
	}
	cfg := call(t, n, "GET", "/admin/config", "")
	leaks("GET /admin/config", cfg.raw)

	// Written back as it was read: refused, the secret stays.
	if r := call(t, n, "PUT", "/admin/consumers/web", get.raw); r.status != 422 || r.body["error"] != "redacted_secret" {
		t.Errorf("PUT of the redacted consumer: %d %s", r.status, r.raw)
	}
	// A change that does not touch the secret goes through PATCH without it.
	r := call(t, n, "PATCH", "/admin/consumers/web", `{"groups":["staff"]}`)
	if r.status != 200 {
		t.Fatalf("PATCH: %d %s", r.status, r.raw)
	}
	rev, _ := strconv.ParseInt(strings.Trim(r.etag, `"`), 10, 64)
	waitRev(t, 5*time.Second, rev, n)
	if code := status("/x", "apikey", key); code != 200 {
		t.Errorf("with the key after the PATCH: %d, want 200", code)
	}

	// Consumers are objects of their own: created, applied by the node, deleted.
	const key2 = "app-7c1d9e2f4a6b8c0d"
	c := call(t, n, "POST", "/admin/consumers", `{"name":"app","credentials":{"key-auth":{"keys":["`+key2+`"]}}}`)
	if c.status != 201 {
		t.Fatalf("POST /admin/consumers: %d %s", c.status, c.raw)
	}
	rev, _ = strconv.ParseInt(strings.Trim(c.etag, `"`), 10, 64)
	waitRev(t, 5*time.Second, rev, n)
	if code := status("/x", "apikey", key2); code != 200 {
		t.Errorf("with the new consumer's key: %d, want 200", code)
	}
	d := call(t, n, "DELETE", "/admin/consumers/app", "")
	rev, _ = strconv.ParseInt(strings.Trim(d.etag, `"`), 10, 64)
	waitRev(t, 5*time.Second, rev, n)
	if code := status("/x", "apikey", key2); code != 401 {
		t.Errorf("with the deleted consumer's key: %d, want 401", code)
	}
	if strings.Contains(n.logs.String(), key2) {
		t.Error("the node's log shows the new consumer's key")
	}

	st, err := cluster.Snapshot(context.Background(), cli, "/x")
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := cluster.PullYAML(st, false)
	if err != nil {
		t.Fatal(err)
	}
	leaks("pull", string(pulled))
	if err := cluster.CheckNotRedacted("pulled.yaml", pulled); err == nil {
		t.Error("a pulled file with redacted secrets would be pushed")
	}
	full, err := cluster.PullYAML(st, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(full), key) || !strings.Contains(string(full), hmac) {
		t.Errorf("pull with secrets lacks them:\n%s", full)
	}
	leaks("the node's log", n.logs.String())
}

// TestFileStateConsumers: a config file's consumers become one key each, named by the
// consumer's name, and a consumer in the shared settings is refused.
func TestFileStateConsumers(t *testing.T) {
	st, _, err := cluster.FileState("app.yaml", []byte("consumers: [{name: web, credentials: {key-auth: {keys: [k-0123456789abcdef]}}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.Rels(), " "); got != "consumers/web" {
		t.Errorf("keys %q, want consumers/web", got)
	}
	local, err := cluster.ReadLocal("node.yaml", []byte(localYAML))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cluster.Assemble(local, "/s", state(map[string]string{"settings": `{"consumers":[{"name":"web"}]}`}))
	if err == nil || !strings.Contains(err.Error(), "etcd:/s/settings: consumers: not a shared setting: each of consumers is a key of its own") {
		t.Errorf("consumers in settings: %v", err)
	}
}
