package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestIdleTLSConnectionsGiveBuffersBack: a kept-alive TLS connection idle past the short
// wait gives its 24 KiB of request and response buffers back, as a plain one does: after
// a read through TLS found nothing, crypto/tls holds no record to return, so the idle wait
// watches the socket. Heap per idle connection, both ends of it (this process holds the
// client too): 16 KB here, 42 KB with the buffers held.
func TestIdleTLSConnectionsGiveBuffersBack(t *testing.T) {
	yaml, cfg := tlsListener(t, `
listeners:
  - address: 127.0.0.1:0
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`)
	tg := startGateway(t, yaml, map[string]string{"b": hostport(echoBackend(t, "a"))})
	cfg.ClientSessionCache = nil
	const n = 64
	conns := make([]*tls.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	buf := make([]byte, 4096)
	request := func(c *tls.Conn, i int) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /idle/%d HTTP/1.1\r\nHost: h\r\n\r\n", i)
		var got strings.Builder
		for !strings.Contains(got.String(), fmt.Sprintf("/idle/%d", i)) { // the echo's body names the path
			m, err := c.Read(buf)
			if err != nil {
				t.Fatalf("conn %d: %v after %q", i, err, got.String())
			}
			got.Write(buf[:m])
		}
	}
	heap := func() uint64 {
		time.Sleep(100 * time.Millisecond) // past the short wait (10 ms, up to 10 ms late) on every conn
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC() // the second empties the buffer pool the first left to its victim cache
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// A first connection warms up what every one shares (the pool's conns, caches).
	warm, err := tls.Dial("tcp", tg.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, warm)
	request(warm, 0)
	before := heap()
	for i := 1; i <= n; i++ {
		c, err := tls.Dial("tcp", tg.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		request(c, i)
	}
	// A loaded machine may run a connection's short wait late: measure again a while.
	var per int64
	for try := 0; try < 20; try++ {
		if per = (int64(heap()) - int64(before)) / n; per <= 28<<10 {
			break
		}
	}
	t.Logf("heap per idle TLS connection, both ends: %d bytes", per)
	if per > 28<<10 {
		t.Errorf("heap per idle TLS connection %d bytes: the 24 KiB of buffers are still held", per)
	}
	// Each one still serves after its idle wait.
	for i, c := range conns {
		request(c, n+1+i)
	}
}

// TestTLSRecordPastTheReadBufferIsServed: one TLS record carries a request that fills the
// 8 KiB read buffer exactly and a second request after it, so the second stays in
// crypto/tls's buffer while the socket has nothing more. With an idle timeout short enough
// that there is no short wait (15 ms), the idle wait must read through TLS and find it; a
// wait on the socket would sit until the idle timeout closes the connection.
func TestTLSRecordPastTheReadBufferIsServed(t *testing.T) {
	yaml, cfg := tlsListener(t, `
listeners:
  - address: 127.0.0.1:0
    idle_timeout: 15ms
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`)
	tg := startGateway(t, yaml, map[string]string{"b": hostport(echoBackend(t, "a"))})
	cfg.DynamicRecordSizingDisabled = true // else a new connection's records start at ~1.2 KB
	c, err := tls.Dial("tcp", tg.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST /first HTTP/1.1\r\nHost: h\r\nContent-Length: "
	const total = 8 << 10 // the server's read buffer
	bodyLen := total - len(head) - len("NNNN\r\n\r\n")
	first := fmt.Sprintf("%s%d\r\n\r\n%s", head, bodyLen, strings.Repeat("x", bodyLen))
	if len(first) != total {
		t.Fatalf("first request is %d bytes, want %d", len(first), total)
	}
	if _, err := c.Write([]byte(first + "GET /second HTTP/1.1\r\nHost: h\r\n\r\n")); err != nil { // one record
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"/first", "/second"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: got %d %q", want, resp.StatusCode, body)
		}
	}
}
