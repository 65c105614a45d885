package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/testutil"
)

// sluiceCmd runs the binary to completion and returns its exit code and output.
func sluiceCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// clusterRevision is the etcd revision a node serves, from its /admin/status.
func clusterRevision(admin string) (int64, string) {
	resp, err := http.Get("http://" + admin + "/admin/status")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var st struct {
		Cluster struct {
			Revision int64  `json:"revision"`
			Source   string `json:"source"`
		} `json:"cluster"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	return st.Cluster.Revision, st.Cluster.Source
}

// TestClusterProcesses runs three `sluice run` processes in cluster mode on a real etcd:
// `sluice config push` feeds them, they converge on 100 changes (reporting the time from
// the write to all three serving it), `diff` and `pull` show etcd's state, the admin write
// API changes it, and a node restarted while etcd is down serves its last good config.
func TestClusterProcesses(t *testing.T) {
	e := testutil.StartEtcd(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	flags := []string{"-endpoints", e.URL, "-prefix", "/e2e"}
	app := configFile(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:1"}]
upstreams: [{id: be, targets: [{address: %q}]}]
routes: [{id: r, upstream: be, rewrite: {add_prefix: /v0}}]
`, be.Addr()))
	if code, out := sluiceCmd(t, append([]string{"config", "push", app}, flags...)...); code != 0 || !strings.Contains(out, "pushed 2 change(s) in one transaction") {
		t.Fatalf("push: exit %d\n%s", code, out)
	}
	if code, out := sluiceCmd(t, append([]string{"config", "push", app}, flags...)...); code != 0 || !strings.Contains(out, "already matches") {
		t.Fatalf("second push: exit %d\n%s", code, out)
	}

	type node struct {
		file, listen, admin string
		p                   *proc
	}
	var nodes []*node
	for range 3 {
		n := &node{listen: testutil.FreeAddr(t), admin: testutil.FreeAddr(t)}
		n.file = configFile(t, fmt.Sprintf(`listeners: [{address: %q}]
admin: {address: %q}
log: {access: "off"}
cluster: {endpoints: [%q], prefix: /e2e}
`, n.listen, n.admin, e.URL))
		n.p = start(t, "run", n.file)
		n.p.waitLog(t, "sluice started in cluster mode", 0)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if code, _, body, err := get("http://" + n.listen + "/x"); err != nil || code != 200 || !strings.Contains(body, `"/v0/x"`) {
			t.Fatalf("node %s: %d %v %s", n.listen, code, err, body)
		}
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		start := time.Now()
		resp, err := cli.Put(context.Background(), "/e2e/routes/r", fmt.Sprintf(`{"id":"r","upstream":"be","rewrite":{"add_prefix":"/v%d"}}`, i))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			for rev, _ := clusterRevision(n.admin); rev < resp.Header.Revision; rev, _ = clusterRevision(n.admin) {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("change %d not served by %s after 10s", i, n.listen)
				}
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("3 processes: write to all serving it, 100 changes: p50 %v, p99 %v, max %v (polling /admin/status; shared machine)", lat[50], lat[98], lat[99])
	for _, n := range nodes {
		if _, _, body, _ := get("http://" + n.listen + "/x"); !strings.Contains(body, `"/v100/x"`) {
			t.Fatalf("node %s after 100 changes: %s", n.listen, body)
		}
	}

	if code, out := sluiceCmd(t, append([]string{"config", "diff", app}, flags...)...); code != 1 || !strings.Contains(out, "~ /e2e/routes/r") {
		t.Fatalf("diff: exit %d\n%s", code, out)
	}
	if code, out := sluiceCmd(t, append([]string{"config", "pull"}, flags...)...); code != 0 || !strings.Contains(out, "add_prefix: /v100") {
		t.Fatalf("pull: exit %d\n%s", code, out)
	}

	// The admin write API of one node changes every node.
	req, _ := http.NewRequest("PATCH", "http://"+nodes[0].admin+"/admin/routes/r", strings.NewReader(`{"rewrite":{"add_prefix":"/api"}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PATCH: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, n := range nodes {
		testutil.WaitFor(t, 5*time.Second, "the patch served by "+n.listen, func() bool {
			_, _, body, _ := get("http://" + n.listen + "/x")
			return strings.Contains(body, `"/api/x"`)
		})
	}
	nodes[0].p.waitLog(t, `"msg":"cluster config change"`, 0)

	// A node restarted while etcd is down serves its last good config. The file follows
	// watched changes within a second (docs/cluster.md): wait for it before the kill.
	last := nodes[2]
	testutil.WaitFor(t, 5*time.Second, "the last-good file to hold the patch", func() bool {
		b, _ := os.ReadFile(last.file + ".last-good.json")
		return strings.Contains(string(b), `/api`)
	})
	last.p.cmd.Process.Kill()
	last.p.done <- <-last.p.done // put it back for the cleanup's wait
	e.Stop()
	if _, err := os.Stat(last.file + ".last-good.json"); err != nil {
		t.Fatal(err)
	}
	last.p = start(t, "run", last.file)
	last.p.waitLog(t, "serving the last good config from disk", 0)
	if code, _, body, err := get("http://" + last.listen + "/x"); err != nil || code != 200 || !strings.Contains(body, `"/api/x"`) {
		t.Fatalf("restarted node with etcd down: %d %v %s", code, err, body)
	}
	// The admin listener may come up just after the data listener.
	src := ""
	testutil.WaitFor(t, 5*time.Second, "the status to name the last good file as the source", func() bool {
		_, src = clusterRevision(last.admin)
		return src != ""
	})
	if src != "last_good_file" {
		t.Errorf("status source %q, want last_good_file", src)
	}
}
