package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/cluster"
)

const pushFile = `# a config file, pushed to etcd
listeners: [{address: "127.0.0.1:8080"}]
errors: {expose_details: true}
upstreams:
  - id: app
    targets: [{address: "127.0.0.1:9001"}]
routes:
  - id: a
    match: {path_prefix: /a}
    upstream: app
  - id: b
    match: {path_prefix: /b}
    upstream: app
`

// plan reads file as a push would and plans it against etcd's state.
func plan(t *testing.T, cli *clientv3.Client, prefix, file string) (*cluster.State, []cluster.Change) {
	t.Helper()
	want, local, err := cluster.FileState("push.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Assemble(local, prefix, want); err != nil {
		t.Fatal(err)
	}
	cur, err := cluster.Snapshot(context.Background(), cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return cur, cluster.Plan(cur, want)
}

func describe(changes []cluster.Change) string {
	var b []string
	for _, c := range changes {
		b = append(b, c.Op+" "+c.Rel)
	}
	return strings.Join(b, ", ")
}

// TestPush: push writes what differs in one transaction, is idempotent, deletes what the
// file no longer has, and refuses to overwrite a change made after it read etcd; pull
// gives the objects back as a config file.
func TestPush(t *testing.T) {
	e := startEtcd(t)
	c := e.Client(t)
	ctx := context.Background()

	cur, changes := plan(t, c, "/p", pushFile)
	if got := describe(changes); got != "create routes/a, create routes/b, create settings, create upstreams/app" {
		t.Fatalf("first plan: %s", got)
	}
	rev, err := cluster.Push(ctx, c, "/p", "test", cur, changes)
	if err != nil {
		t.Fatal(err)
	}
	if cur, changes = plan(t, c, "/p", pushFile); len(changes) != 0 || cur.Rev != rev {
		t.Fatalf("second plan of the same file: %s (revision %d, pushed %d)", describe(changes), cur.Rev, rev)
	}

	edited := strings.Replace(pushFile, "path_prefix: /b", "path_prefix: /bee", 1)
	edited = strings.Replace(edited, "  - id: a\n    match: {path_prefix: /a}\n    upstream: app\n", "", 1)
	cur, changes = plan(t, c, "/p", edited)
	if got := describe(changes); got != "delete routes/a, replace routes/b" {
		t.Fatalf("plan of the edited file: %s", got)
	}
	put(t, c, "/p/routes/b", `{"id":"b","upstream":"app"}`) // someone else writes first
	if _, err := cluster.Push(ctx, c, "/p", "test", cur, changes); !errors.Is(err, cluster.ErrConflict) {
		t.Fatalf("push over a newer write: %v, want ErrConflict", err)
	}
	// A write through the API to another key moves the fence: a push planned before it is
	// refused too, since it was validated against a state that no longer exists.
	cur, changes = plan(t, c, "/p", edited)
	n, err := startNode(t, nodeFile(t, e, "/p"))
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, n, "PATCH", "/admin/upstreams/app", `{"targets":[{"address":"127.0.0.1:9002"}]}`); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if _, err := cluster.Push(ctx, c, "/p", "test", cur, changes); !errors.Is(err, cluster.ErrConflict) {
		t.Fatalf("push planned before another key's write: %v, want ErrConflict", err)
	}
	cur, changes = plan(t, c, "/p", edited)
	if got := describe(changes); got != "delete routes/a, replace routes/b, replace upstreams/app" {
		t.Fatalf("plan after the API write: %s", got)
	}
	if _, err := cluster.Push(ctx, c, "/p", "test", cur, changes); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Get(ctx, "/p/fence"); err != nil || len(f.Kvs) != 1 || !strings.Contains(string(f.Kvs[0].Value), `"what":"3 changes","who":"test"`) {
		t.Fatalf("fence after the push: %v %v", f, err)
	}
	st, err := cluster.Snapshot(ctx, c, "/p")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cluster.PullYAML(st, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"expose_details: true", "path_prefix: /bee", "address: 127.0.0.1:9001"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pull lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "/a") || strings.Contains(string(out), "listeners") {
		t.Errorf("pull has a deleted route or a node-local section:\n%s", out)
	}

	// An invalid file is refused before anything is planned.
	_, local, err := cluster.FileState("bad.yaml", []byte(strings.Replace(pushFile, "upstream: app\n", "upstream: nope\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := cluster.FileState("bad.yaml", []byte(strings.Replace(pushFile, "upstream: app\n", "upstream: nope\n", 1)))
	if _, err := cluster.Assemble(local, "/p", want); err == nil || !strings.Contains(err.Error(), `etcd:/p/routes/a: upstream: unknown upstream "nope"`) {
		t.Fatalf("invalid file: %v", err)
	}
}
