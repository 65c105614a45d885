package netio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// pair returns a wrapped client connection and the server side of a loopback TCP connection.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := Wrap(nc).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap", nc)
	}
	t.Cleanup(func() { c.Close(); sc.Close() })
	return c, sc.(*net.TCPConn)
}

func TestReadWriteLargeBothWays(t *testing.T) {
	c, sc := pair(t)
	// 8 MiB is far above the socket buffers, so Write meets EAGAIN and parks on the poller.
	want := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		c.Conn.(*net.TCPConn).CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("server read %d bytes, want %d identical", len(got), len(want))
	}
	go func() {
		sc.Write(want)
		sc.CloseWrite()
	}()
	got, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll through Conn: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client read %d bytes, want %d identical", len(got), len(want))
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after FIN = %d, %v; want 0, EOF", n, err)
	}
}

func TestReadHonoursDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want a deadline error", err)
	}
	if !strings.HasPrefix(err.Error(), "read tcp ") {
		t.Errorf("error text %q, want it to read like net.Conn's (read tcp ...)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Read returned after %v", d)
	}
}

func TestReadUnblocksOnClose(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "the Read to park on the poller", func() bool { return parkedIn("netio.(*Conn).Read(") })
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after Close")
	}
}

func TestResetIsAnOpErrorWithErrno(t *testing.T) {
	c, sc := pair(t)
	sc.SetLinger(0)
	sc.Close() // RST
	// No wait for the RST to arrive: the Read waits for it (boundedly).
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 10))
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after RST = %#v, want a *net.OpError wrapping ECONNRESET", err)
	}
}

func TestPeek(t *testing.T) {
	c, sc := pair(t)
	fd := func() uintptr {
		var f uintptr
		c.rc.Control(func(fd uintptr) { f = fd })
		return f
	}()
	if n, e := Peek(fd); n != 0 || e != syscall.EAGAIN {
		t.Fatalf("Peek on a quiet socket = %d, %v; want 0, EAGAIN", n, e)
	}
	sc.Write([]byte("x"))
	waitPeek(t, fd, "the byte")
	if n, e := Peek(fd); n != 1 || e != 0 {
		t.Fatalf("Peek with a byte waiting = %d, %v; want 1, 0", n, e)
	}
	if n, e := Peek(fd); n != 1 || e != 0 {
		t.Fatalf("second Peek = %d, %v; want the byte still there", n, e)
	}
	b := make([]byte, 4)
	if n, err := c.Read(b); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("Read after Peek = %d, %v, %q", n, err, b[:n])
	}
	sc.CloseWrite()
	waitPeek(t, fd, "the FIN")
	if n, e := Peek(fd); n != 0 || e != 0 {
		t.Fatalf("Peek after FIN = %d, %v; want 0, 0", n, e)
	}
}

// waitPeek waits until Peek on the quiet socket fd finds something (what) to report.
func waitPeek(t *testing.T, fd uintptr, what string) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, func() bool { _, e := Peek(fd); return e != syscall.EAGAIN })
}

// parkedIn reports whether a goroutine running fn is parked on the network poller.
func parkedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, " [IO wait") && strings.Contains(g, fn) {
			return true
		}
	}
	return false
}

func TestWrapLeavesNonTCPAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap wrapped a net.Pipe")
	}
}

func BenchmarkReadWrite(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		name := "net.Conn"
		if wrap {
			name = "netio.Conn"
		}
		b.Run(name, func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			go func() {
				sc, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(sc, sc) // echo
				sc.Close()
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c := nc
			if wrap {
				c = Wrap(nc)
			}
			defer c.Close()
			msg, buf := make([]byte, 300), make([]byte, 300)
			b.ReportAllocs()
			for b.Loop() {
				c.Write(msg)
				io.ReadFull(c, buf)
			}
		})
	}
}

func TestPeekNowAndWaitReadable(t *testing.T) {
	c, sc := pair(t)
	if r, err := c.PeekNow(); r != PeekNothing || err != nil {
		t.Fatalf("PeekNow on a quiet socket = %v, %v; want PeekNothing", r, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond) // a late byte: WaitReadable has to wait for it
		sc.Write([]byte("x"))
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WaitReadable(); err != nil {
		t.Fatalf("WaitReadable: %v", err)
	}
	if r, _ := c.PeekNow(); r != PeekData {
		t.Fatalf("PeekNow with a byte waiting = %v, want PeekData", r)
	}
	b := make([]byte, 1)
	if n, err := c.Read(b); n != 1 || err != nil {
		t.Fatalf("the byte was consumed by a peek: Read = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if err := c.WaitReadable(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitReadable on a quiet socket: %v, want the deadline", err)
	}
	sc.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WaitReadable(); err != nil {
		t.Fatalf("WaitReadable after the peer closed: %v", err)
	}
	if r, _ := c.PeekNow(); r != PeekClosed {
		t.Fatalf("PeekNow after the peer closed = %v, want PeekClosed", r)
	}
}

// TestReadNowAndWriteNow: they never wait, whatever the deadlines (a past one included),
// and report the socket's state: nothing yet, bytes, the peer's FIN, a full send buffer.
func TestReadNowAndWriteNow(t *testing.T) {
	c, sc := pair(t)
	c.SetDeadline(time.Now().Add(-time.Second)) // a stale deadline must not stop them
	b := make([]byte, 8)
	if n, err := c.ReadNow(b); n != 0 || err != ErrWouldBlock {
		t.Fatalf("ReadNow on a quiet socket = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	var ne net.Error
	if !errors.As(ErrWouldBlock, &ne) || !ne.Timeout() {
		t.Fatal("ErrWouldBlock is not a net.Error timeout")
	}
	sc.Write([]byte("abc"))
	waitReadable(t, c)
	if n, err := c.ReadNow(b); n != 3 || err != nil || string(b[:n]) != "abc" {
		t.Fatalf("ReadNow with bytes waiting = %d, %v, %q", n, err, b[:n])
	}
	if n, err := c.WriteNow([]byte("xyz")); n != 3 || err != nil {
		t.Fatalf("WriteNow = %d, %v", n, err)
	}
	sc.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := io.ReadFull(sc, b[:3]); n != 3 || err != nil || string(b[:3]) != "xyz" {
		t.Fatalf("peer read %q, %v", b[:n], err)
	}
	// Fill the send buffer: WriteNow takes what fits and says it would block.
	big := make([]byte, 64<<20)
	n, err := c.WriteNow(big)
	if err != ErrWouldBlock || n == 0 || n == len(big) {
		t.Fatalf("WriteNow into a full buffer = %d of %d, %v; want part and ErrWouldBlock", n, len(big), err)
	}
	sc.CloseWrite()
	waitReadable(t, c)
	if n, err := c.ReadNow(b); n != 0 || err != io.EOF {
		t.Fatalf("ReadNow after FIN = %d, %v; want 0, io.EOF", n, err)
	}
	c.Close()
	if _, err := c.ReadNow(b); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadNow after Close = %v, want net.ErrClosed", err)
	}
}

func waitReadable(t *testing.T, c *Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	if err := c.WaitReadable(); err != nil {
		t.Fatal(err)
	}
}

// PeekReset tells a reset from a FIN (which may be a half-close) and from bytes or nothing.
func TestPeekReset(t *testing.T) {
	c, sc := pair(t)
	if rst, err := c.PeekReset(); rst || err != nil {
		t.Fatalf("PeekReset on a quiet socket = %v, %v", rst, err)
	}
	sc.Write([]byte("x"))
	testWaitReadable(t, c)
	if rst, _ := c.PeekReset(); rst {
		t.Fatal("PeekReset with a byte waiting reports a reset")
	}
	sc.CloseWrite()
	c.Read(make([]byte, 1))
	testWaitReadable(t, c)
	if rst, _ := c.PeekReset(); rst {
		t.Fatal("PeekReset after the peer's FIN reports a reset")
	}

	// The kernel reports a reset once (the first call that looks clears it), so nothing
	// else may look at the socket first: poll PeekReset itself.
	c2, sc2 := pair(t)
	sc2.SetLinger(0)
	sc2.Close()
	testutil.WaitFor(t, 5*time.Second, "PeekReset to see the RST", func() bool {
		rst, err := c2.PeekReset()
		if err != nil {
			t.Fatal(err)
		}
		return rst
	})
}

// TestSendReadLosesNoAnswer: SendRead's read waits without a first try, so an answer that
// arrives right after the write must still wake it. An echo peer answers at once, many
// times over; an answer whose readiness event were lost would leave SendRead waiting out
// its deadline.
func TestSendReadLosesNoAnswer(t *testing.T) {
	c, sc := pair(t)
	go io.Copy(sc, sc) // echo
	w, r := []byte("ping-0123456789"), make([]byte, 64)
	for i := range 2000 {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		sent, n, err := c.SendRead(w, r)
		if err != nil || sent != len(w) {
			t.Fatalf("round %d: sent %d, n %d, err %v", i, sent, n, err)
		}
		for got := n; got < len(w); got += n { // the echo may come in pieces
			if n, err = c.Read(r[got:]); err != nil {
				t.Fatalf("round %d: rest of the echo: %v", i, err)
			}
		}
	}
}

// TestSendReadFullSocketBuffer: a request the socket does not take at once is finished as an
// ordinary write, and the answer is then read.
func TestSendReadFullSocketBuffer(t *testing.T) {
	c, sc := pair(t)
	big := bytes.Repeat([]byte("x"), 16<<20) // far over any socket buffer
	go func() {
		time.Sleep(50 * time.Millisecond) // let the send fill the buffers first
		if _, err := io.CopyN(io.Discard, sc, int64(len(big))); err == nil {
			sc.Write([]byte("done"))
		}
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := make([]byte, 16)
	sent, n, err := c.SendRead(big, r)
	if err != nil || sent != len(big) || string(r[:n]) != "done" {
		t.Fatalf("sent %d of %d, read %q, err %v", sent, len(big), r[:n], err)
	}
}

// TestSendReadFailedSend: a send the socket refuses is a *SendError with the bytes sent (0),
// not a read error, so that the caller can tell the peer saw nothing.
func TestSendReadFailedSend(t *testing.T) {
	c, _ := pair(t)
	if err := CloseWrite(c); err != nil { // our side can no longer send: EPIPE
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	sent, _, err := c.SendRead([]byte("GET / HTTP/1.1\r\n\r\n"), make([]byte, 16))
	var se *SendError
	if !errors.As(err, &se) || sent != 0 || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("SendRead on a shut socket: sent %d, err %#v; want a *SendError wrapping EPIPE, 0 sent", sent, err)
	}
}

// TestSendReadPastDeadline: a deadline already past stops SendRead before it writes
// anything: sent is 0 and the peer received nothing.
func TestSendReadPastDeadline(t *testing.T) {
	c, sc := pair(t)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	sent, _, err := c.SendRead([]byte("hello"), make([]byte, 16))
	if sent != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("sent %d, err %v; want 0 and a deadline error", sent, err)
	}
	sc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := sc.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("peer read %d bytes (%v); want nothing sent", n, err)
	}
}
