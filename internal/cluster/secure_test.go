package cluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/cluster"
	"sluice/internal/config"
	"sluice/internal/testutil"
)

// TestEtcdTLSAndAuth: a node reaches an etcd that requires TLS with client certificates and
// a user with rights on the prefix only; a wrong password is refused at start.
func TestEtcdTLSAndAuth(t *testing.T) {
	ca := testutil.NewCA(t)
	srvCert, srvKey := ca.Issue(t, "etcd", testutil.CertOptions{IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	cliCert, cliKey := ca.Issue(t, "client", testutil.CertOptions{Client: true})
	caFile := ca.CAFile(t)
	health, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	hc := ca.ClientConfig("127.0.0.1")
	hc.Certificates = []tls.Certificate{health}
	e := testutil.StartEtcdWith(t, testutil.EtcdOptions{CertFile: srvCert, KeyFile: srvKey, ClientCA: caFile, Health: hc})

	tlsBlock := &config.ClusterTLS{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey}
	client := func(user, pass string) *clientv3.Client {
		cli, err := cluster.NewClient(&config.Cluster{Endpoints: []string{e.URL}, Username: user, Password: pass, TLS: tlsBlock,
			DialTimeout: ptr(config.Duration(2 * time.Second))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	ctx := context.Background()
	root := client("", "")
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.UserAdd(ctx, "root", "root-password"))
	must(root.UserGrantRole(ctx, "root", "root"))
	must(root.RoleAdd(ctx, "sluice"))
	must(root.RoleGrantPermission(ctx, "sluice", "/t/", clientv3.GetPrefixRangeEnd("/t/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(root.UserAdd(ctx, "sluice", "sluice-password"))
	must(root.UserGrantRole(ctx, "sluice", "sluice"))
	must(root.AuthEnable(ctx))

	admin := client("root", "root-password")
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, admin, "/t/upstreams/app", upstreamJSON("app", be.Addr()))
	put(t, admin, "/t/routes/r", routeJSON("r", "/", "app", "/secure"))

	file := func(pass string) string {
		f := nodeFile(t, &etcdServer{e}, "/t")
		// The client fetches its auth token within the dial timeout: room for -race.
		data := strings.Replace(readFile(t, f), "dial_timeout: 1s", "dial_timeout: 5s", 1)
		writeFile(t, f, data+fmt.Sprintf("  username: sluice\n  password: %s\n  tls: {ca_file: %q, cert_file: %q, key_file: %q}\n", pass, caFile, cliCert, cliKey))
		return f
	}
	n, err := startNode(t, file("sluice-password"))
	if err != nil {
		t.Fatal(err)
	}
	expectBody(t, "/x", `"/secure/x"`, n)
	rev := put(t, admin, "/t/routes/r", routeJSON("r", "/", "app", "/watched"))
	waitRev(t, 5*time.Second, rev, n)
	expectBody(t, "/x", `"/watched/x"`, n)

	if _, err := startNode(t, file("wrong")); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("start with a wrong password: %v", err)
	}

	// With auth, the client cannot even be created while etcd is down: the node still starts
	// from its last good file, and connects once etcd is back.
	n.cancel()
	e.Stop()
	n2, err := startNode(t, n.file)
	if err != nil {
		t.Fatalf("start with auth, etcd down, a last good file: %v", err)
	}
	expectBody(t, "/x", `"/watched/x"`, n2)
	e.Start()
	rev = put(t, client("root", "root-password"), "/t/routes/r", routeJSON("r", "/", "app", "/reconnected"))
	waitRev(t, 15*time.Second, rev, n2)
	expectBody(t, "/x", `"/reconnected/x"`, n2)
}
