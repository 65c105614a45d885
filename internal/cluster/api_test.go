package cluster_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

type apiResp struct {
	status int
	etag   string
	body   map[string]any
	raw    string
}

func call(t *testing.T, n *testNode, method, path, body string, hdr ...string) apiResp {
	t.Helper()
	req, err := http.NewRequest(method, n.admin()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := apiResp{status: resp.StatusCode, etag: resp.Header.Get("ETag"), raw: string(b)}
	json.Unmarshal(b, &r.body)
	return r
}

// TestWriteAPI: create, replace, patch and delete through the admin API, each validated
// against the whole resulting config before anything is written, with the object's mod
// revision as its ETag and If-Match checked in the same transaction.
func TestWriteAPI(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/w/upstreams/app", upstreamJSON("app", be.Addr()))
	nodes := startNodes(t, e, "/w", 2)
	n := nodes[0]

	// An invalid write is refused with the validation errors, and nothing is written.
	r := call(t, n, "POST", "/admin/routes", `{"id":"r","match":{"path_prefix":"/"},"upstream":"nope","retry":{"attempts":0}}`)
	if r.status != 422 || !strings.Contains(r.raw, `etcd:/w/routes/r: upstream: unknown upstream \"nope\"`) || !strings.Contains(r.raw, "retry.attempts") {
		t.Fatalf("invalid create: %d %s", r.status, r.raw)
	}
	if got, _ := cli.Get(t.Context(), "/w/routes/r"); len(got.Kvs) != 0 {
		t.Fatal("an invalid write reached etcd")
	}

	r = call(t, n, "POST", "/admin/routes", `{"id":"r","match":{"path_prefix":"/"},"upstream":"app","rewrite":{"add_prefix":"/one"}}`)
	if r.status != 201 || r.etag == "" {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	created := r.etag
	waitRev(t, 5*time.Second, int64(r.body["revision"].(float64)), nodes...)
	expectBody(t, "/x", `"/one/x"`, nodes...)
	if r = call(t, n, "POST", "/admin/routes", `{"id":"r","upstream":"app"}`); r.status != 409 {
		t.Fatalf("create of an existing id: %d %s", r.status, r.raw)
	}

	// GET returns the stored object with its ETag.
	if r = call(t, n, "GET", "/admin/routes/r", ""); r.status != 200 || r.etag != created || r.body["upstream"] != "app" {
		t.Fatalf("get: %d %s %s", r.status, r.etag, r.raw)
	}

	// Replace with the right If-Match, then a stale one: 412.
	r = call(t, n, "PUT", "/admin/routes/r", `{"match":{"path_prefix":"/"},"upstream":"app","rewrite":{"add_prefix":"/two"}}`, "If-Match", created)
	if r.status != 200 || r.etag == created {
		t.Fatalf("replace: %d %s", r.status, r.raw)
	}
	replaced := r.etag
	if r = call(t, n, "PUT", "/admin/routes/r", `{"upstream":"app"}`, "If-Match", created); r.status != 412 {
		t.Fatalf("replace with a stale If-Match: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "PATCH", "/admin/routes/r", `{"priority":5}`, "If-Match", created); r.status != 412 {
		t.Fatalf("patch with a stale If-Match: %d %s", r.status, r.raw)
	}

	// Patch (RFC 7386): fields merged, null removes.
	r = call(t, n, "PATCH", "/admin/routes/r", `{"priority":5,"rewrite":{"add_prefix":null,"strip_prefix":"/s"}}`, "If-Match", replaced)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	g := call(t, n, "GET", "/admin/routes/r", "")
	if g.body["priority"] != float64(5) || g.body["rewrite"].(map[string]any)["strip_prefix"] != "/s" || g.body["rewrite"].(map[string]any)["add_prefix"] != nil {
		t.Fatalf("after patch: %s", g.raw)
	}
	waitRev(t, 5*time.Second, int64(r.body["revision"].(float64)), nodes...)
	expectBody(t, "/s/y", `"/y"`, nodes...)

	// Deleting an upstream a route uses is refused; deleting the route, then it, works.
	if r = call(t, n, "DELETE", "/admin/upstreams/app", ""); r.status != 422 || !strings.Contains(r.raw, "unknown upstream") {
		t.Fatalf("delete of a used upstream: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "DELETE", "/admin/routes/r", "", "If-Match", g.etag); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "DELETE", "/admin/upstreams/app", ""); r.status != 200 {
		t.Fatalf("delete upstream: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "DELETE", "/admin/routes/r", ""); r.status != 404 {
		t.Fatalf("delete of a missing route: %d %s", r.status, r.raw)
	}

	// Settings: node-local sections are refused.
	if r = call(t, n, "PUT", "/admin/settings", `{"listeners":[{"address":"0.0.0.0:80"}]}`); r.status != 422 || !strings.Contains(r.raw, "node-local") {
		t.Fatalf("settings with listeners: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "PUT", "/admin/settings", `{"errors":{"expose_details":true}}`); r.status != 200 {
		t.Fatalf("settings: %d %s", r.status, r.raw)
	}
	if r = call(t, n, "PUT", "/admin/routes/a%2Fb", `{"upstream":"x"}`); r.status/100 != 4 {
		t.Fatalf("an id with a slash: %d %s", r.status, r.raw)
	}
}

// TestWriteAPIFileMode: in file mode the write API answers 405 and says why.
func TestWriteAPIFileMode(t *testing.T) {
	e := startEtcd(t)
	n := startNodes(t, e, "/f", 1)[0]
	n.gw.SetCluster(nil)
	if r := call(t, n, "PUT", "/admin/routes/r", `{}`); r.status != 405 || !strings.Contains(r.raw, "read-only in file mode") {
		t.Fatalf("file mode write: %d %s", r.status, r.raw)
	}
}

// TestWriteAPIKey: with an API key, writes need it, and the audit line names its
// fingerprint.
func TestWriteAPIKey(t *testing.T) {
	e := startEtcd(t)
	file := nodeFile(t, e, "/key")
	writeFile(t, file, strings.Replace(readFile(t, file), "admin:\n", "admin:\n  api_key: 0123456789abcdef0123\n", 1))
	n, err := startNode(t, file)
	if err != nil {
		t.Fatal(err)
	}
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	if r := call(t, n, "POST", "/admin/upstreams", upstreamJSON("app", be.Addr())); r.status != 401 {
		t.Fatalf("write without the key: %d %s", r.status, r.raw)
	}
	if r := call(t, n, "POST", "/admin/upstreams", upstreamJSON("app", be.Addr()), "X-API-Key", "0123456789abcdef0123"); r.status != 201 {
		t.Fatalf("write with the key: %d %s", r.status, r.raw)
	}
	sum := sha256.Sum256([]byte("0123456789abcdef0123"))
	audit := regexp.MustCompile(`msg="cluster config change" component=cluster audit=true who="key:` + hex.EncodeToString(sum[:4]) +
		` 127.0.0.1:\d+" op=create key=/key/upstreams/app old_revision=0 new_revision=\d+`)
	if !audit.MatchString(n.logs.String()) {
		t.Errorf("no audit line like %s in the log:\n%s", audit, n.logs)
	}
	if strings.Contains(n.logs.String(), "0123456789abcdef0123") {
		t.Error("the API key itself is in the log")
	}
}
