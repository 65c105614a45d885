package testutil

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisServer is a real redis-server started by a test on a loopback port, with no
// persistence (--save ” --appendonly no). Stop and Start restart it on the same port, to
// test what clients do while it is down.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Redis ports: the range this project's Redis tests use (below the ephemeral range, so a
// port picked here is not taken by some client's outgoing connection meanwhile).
const redisPortLow, redisPortHigh = 25000, 25999

// StartRedis starts redis-server for t and stops it at the end of the test. Without the
// binary (Debian package redis-server) the test is skipped loudly, or fails when
// SLUICE_REQUIRE_EXTERNAL=1.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found (Debian package redis-server): this test needs it"
		if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg + " (SLUICE_REQUIRE_EXTERNAL=1)")
		}
		fmt.Fprintf(os.Stderr, "!!! SKIPPING %s: %s\n", t.Name(), msg)
		t.Skip(msg)
	}
	r := &RedisServer{t: t, bin: bin, dir: t.TempDir()}
	off := rand.IntN(redisPortHigh - redisPortLow + 1)
	for i := 0; i <= redisPortHigh-redisPortLow; i++ {
		p := redisPortLow + (off+i)%(redisPortHigh-redisPortLow+1)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		r.port = p
		if err := r.start(); err == nil {
			t.Cleanup(func() {
				r.Stop()
				if t.Failed() {
					b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
					t.Logf("redis-server log:\n%s", b)
				}
			})
			return r
		}
	}
	t.Fatalf("no free port for redis-server in %d-%d", redisPortLow, redisPortHigh)
	return nil
}

// Addr returns the server's host:port.
func (r *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Start starts the server again after Stop, on the same port.
func (r *RedisServer) Start() {
	r.t.Helper()
	if err := r.start(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *RedisServer) start() error {
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start", r.port)
		default:
		}
		if ping(r.Addr()) {
			r.mu.Lock()
			r.cmd = cmd
			r.mu.Unlock()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer PING in 10s", r.port)
}

// Stop kills the server (SIGKILL: clients see their connections reset, as in a crash) and
// waits until its port refuses connections.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	for i := 0; i < 500 && ping(r.Addr()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
