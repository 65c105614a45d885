package testutil

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Etcd is a real etcd server on loopback for tests, with its data in a temp dir: Debian's
// etcd-server package (/usr/bin/etcd), which speaks the v3 gRPC API of the client module.
// Without it the test is skipped loudly, or fails when SLUICE_REQUIRE_EXTERNAL=1
// (scripts/test.sh sets it).
type Etcd struct {
	// URL is the client URL, http://127.0.0.1:<port>.
	URL string

	t            testing.TB
	bin, dir     string
	client, peer int
	cmd          *exec.Cmd
	done         chan struct{}
	log          string
	logFrom      int64 // the log's size when the current start began
	opts         EtcdOptions
}

// EtcdOptions shape a test's etcd.
type EtcdOptions struct {
	// TLS serves the client URL over HTTPS with this certificate and key; ClientCA, when
	// set, also requires client certificates signed by it (--client-cert-auth).
	CertFile, KeyFile, ClientCA string
	// Health is the TLS config used to ask an HTTPS etcd whether it is healthy.
	Health *tls.Config
}

// etcd's ports are on its command line and must stay the same across a restart, so they
// cannot be port 0: they are taken at random in 24000-24999 (below the ephemeral range), or
// in the 1,000 ports from SLUICE_ETCD_PORT_BASE when it is set (parallel runs on one
// machine give each its own range).
const etcdPortLo, etcdPortHi = 24000, 24999

func etcdPort(t testing.TB) int {
	t.Helper()
	lo, hi := etcdPortLo, etcdPortHi
	if b, err := strconv.Atoi(os.Getenv("SLUICE_ETCD_PORT_BASE")); err == nil && b > 0 && b < 65535-1000 {
		lo, hi = b, b+999
	}
	return freePortIn(t, lo, hi)
}

// StartEtcd starts an etcd and stops it when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return StartEtcdWith(t, EtcdOptions{})
}

// StartEtcdWith starts an etcd shaped by o and stops it when the test ends.
func StartEtcdWith(t testing.TB, o EtcdOptions) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		msg := "etcd not found (Debian package etcd-server): this test needs a real etcd"
		if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
		}
		fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
		t.Skip(msg)
	}
	dir := t.TempDir()
	e := &Etcd{t: t, bin: bin, dir: dir, log: filepath.Join(dir, "etcd.log"), opts: o}
	scheme := "http"
	if o.CertFile != "" {
		scheme = "https"
	}
	// The ports were free when drawn but are not held until etcd binds them: another
	// package's etcd, started at the same moment, can take one first. Then etcd exits on
	// "address already in use" and is started again on new ports.
	for try := 1; ; try++ {
		e.client = etcdPort(t)
		for e.peer = etcdPort(t); e.peer == e.client; e.peer = etcdPort(t) {
		}
		e.URL = scheme + "://127.0.0.1:" + strconv.Itoa(e.client)
		tail, started := e.start()
		if started {
			break
		}
		if try == 5 || !strings.Contains(tail, "address already in use") {
			t.Fatalf("etcd exited:\n%s", tail)
		}
		os.RemoveAll(filepath.Join(dir, "data"))
	}
	t.Cleanup(e.Stop)
	return e
}

// Start starts etcd (again, on the same ports and data) and waits until it is healthy.
func (e *Etcd) Start() {
	e.t.Helper()
	if tail, started := e.start(); !started {
		e.t.Fatalf("etcd exited:\n%s", tail)
	}
}

// start starts etcd and waits until it is healthy; if it exits first, it returns its log's
// tail and false.
func (e *Etcd) start() (string, bool) {
	t := e.t
	t.Helper()
	peer := "http://127.0.0.1:" + strconv.Itoa(e.peer)
	log, err := os.OpenFile(e.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := log.Stat(); err == nil {
		e.logFrom = fi.Size() // this start's lines come after
	}
	e.cmd = exec.Command(e.bin, "--name", "t", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.URL, "--advertise-client-urls", e.URL,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t="+peer, "--initial-cluster-state", "new")
	if o := e.opts; o.CertFile != "" {
		e.cmd.Args = append(e.cmd.Args, "--cert-file", o.CertFile, "--key-file", o.KeyFile)
		if o.ClientCA != "" {
			e.cmd.Args = append(e.cmd.Args, "--client-cert-auth", "--trusted-ca-file", o.ClientCA)
		}
	}
	e.cmd.Stdout, e.cmd.Stderr = log, log
	err = e.cmd.Start()
	log.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(e.cmd, e.done)
	deadline := time.Now().Add(15 * time.Second)
	for !e.healthy() {
		select {
		case <-e.done:
			e.cmd = nil
			return e.tail(), false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not healthy after 15s:\n%s", e.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", true
}

// healthy reports whether this etcd serves: its own log says so since it was started (an
// etcd of another test on the same port would answer the health check too) and the health
// check answers true.
func (e *Etcd) healthy() bool {
	if b, _ := os.ReadFile(e.log); int64(len(b)) < e.logFrom || !strings.Contains(string(b[e.logFrom:]), "ready to serve client requests") {
		return false
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: e.opts.Health}, Timeout: time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(e.URL + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), `"true"`)
}

func (e *Etcd) tail() string {
	b, _ := os.ReadFile(e.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// Stop stops etcd (SIGINT, then SIGKILL after 10s) and waits for it to exit.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(os.Interrupt)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
	}
	e.cmd = nil
}
