package testutil

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, c net.Conn, br *bufio.Reader, id string) (*http.Response, error) {
	t.Helper()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: " + id + "\r\n\r\n")); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		_ = resp.Body.Close()
	}
	return resp, err
}

func TestBackends(t *testing.T) {
	b := AdvertisingCloser(t, 7, 50*time.Millisecond)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, id := range []string{"a", "a", "b"} {
		resp, err := get(t, c, br, id)
		if err != nil {
			t.Fatal(err)
		}
		if ka := resp.Header.Get("Keep-Alive"); ka != "timeout=7" {
			t.Errorf("Keep-Alive %q", ka)
		}
	}
	if b.Processed("a") != 2 || b.Accepted() != 1 || strings.Join(b.Duplicates(), ",") != "a" {
		t.Errorf("processed a=%d accepted=%d dups=%v", b.Processed("a"), b.Accepted(), b.Duplicates())
	}
	// The idle close is a FIN: the next read sees EOF.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("connection not closed after idle timeout")
	}
}

func TestRacingAndRestart(t *testing.T) {
	b := RacingCloser(t, 200*time.Millisecond, 190*time.Millisecond)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if _, err := get(t, c, br, "1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // idle into the race window
	if _, err := get(t, c, br, "2"); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("request in the race window: %v, want ECONNRESET", err)
	}
	_ = c.Close()
	if b.Processed("2") != 0 || b.Dropped() != 1 {
		t.Errorf("dropped request processed %d times, dropped %d", b.Processed("2"), b.Dropped())
	}

	e := Echo(t)
	c, err = net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br = bufio.NewReader(c)
	if _, err := get(t, c, br, "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after restart: %v, want ECONNRESET", err)
	}
	c2, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatalf("dial after restart: %v", err)
	}
	defer c2.Close()
	if _, err := get(t, c2, bufio.NewReader(c2), "y"); err != nil || e.Accepted() != 2 {
		t.Errorf("after restart: %v, accepted %d", err, e.Accepted())
	}
	if _, err := net.Dial("tcp", FreeAddr(t)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial FreeAddr: %v", err)
	}
}

// TestRefusingAddr: connections to a RefusingAddr are refused, and its port cannot be taken
// while the test runs.
func TestRefusingAddr(t *testing.T) {
	addr := RefusingAddr(t)
	for range 3 {
		if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("listen on %s succeeded: the port is not held", addr)
	}
}

// TestHeldRequestCut: a request asking for X-Backend-Delay is processed, then held (Holding
// says so), and a Crash during the hold resets it unanswered (Unanswered counts it), while
// the listener stays up for the next connection.
func TestHeldRequestCut(t *testing.T) {
	b := NewBackend(t, BackendOptions{})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Long enough for the test to see the hold on a loaded machine; Close waits for it.
	if _, err := c.Write([]byte("POST / HTTP/1.1\r\nHost: t\r\nX-Request-Id: p\r\nX-Backend-Delay: 2s\r\nContent-Length: 1\r\n\r\nx")); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 10*time.Second, "the request held", func() bool { return b.Holding() == 1 })
	if b.Processed("p") != 1 || b.Unanswered() != 0 {
		t.Errorf("held request: processed %d, unanswered %d, want 1 and 0", b.Processed("p"), b.Unanswered())
	}
	b.Crash()
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Error("a response arrived for the request the crash cut")
	}
	WaitFor(t, 10*time.Second, "the cut request counted unanswered", func() bool { return b.Unanswered() == 1 })
	if b.Crashes() != 1 || b.Holding() != 0 {
		t.Errorf("Crashes() = %d, Holding() = %d, want 1 and 0", b.Crashes(), b.Holding())
	}
	c2, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatalf("listener gone after a crash: %v", err)
	}
	defer c2.Close()
	if _, err := get(t, c2, bufio.NewReader(c2), "g"); err != nil || b.Unanswered() != 1 {
		t.Errorf("request after the crash: %v, unanswered %d, want 1", err, b.Unanswered())
	}
}

// TestBackendLingersAfterConnectionClose: a request answered with "Connection: close" while
// the client is still sending (here 1 MiB after the request: an HTTP/2 preface's frames, a
// pipelined request) is followed by a FIN, and what the client sends meanwhile is dropped:
// the client reads the whole answer and then EOF, and its writes succeed. A close with that
// input unread resets the connection instead (the answer's reader then sees "connection
// reset by peer", and a writer loses the answer to the reset first).
func TestBackendLingersAfterConnectionClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    BackendOptions
		req  string
	}{
		{name: "request says close", o: BackendOptions{Echo: true}, req: "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
		{name: "CloseAfter", o: BackendOptions{CloseAfter: 1}, req: "GET / HTTP/1.1\r\nHost: t\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBackend(t, tc.o)
			c, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			wrote := make(chan error, 1)
			go func() {
				_, err := c.Write([]byte(tc.req + strings.Repeat("x", 1<<20)))
				wrote <- err
			}()
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 || !resp.Close {
				t.Fatalf("answer %d (close %v), body read: %v; want 200 with Connection: close", resp.StatusCode, resp.Close, err)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after the answer: %v; want EOF (a FIN, not a reset)", err)
			}
			if err := <-wrote; err != nil {
				t.Errorf("the client's write: %v; want the backend to read and drop it", err)
			}
		})
	}
}
