package netio

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestHoldWritesCopiesAndSendsWithTheRead: HoldWrites keeps copies of every Write (the
// writer reuses its buffer at once, as crypto/tls does), sends nothing until the next Read,
// and that Read sends them all, in order, before it waits for the answer.
func TestHoldWritesCopiesAndSendsWithTheRead(t *testing.T) {
	c, sc := pair(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	for round := range 3 { // the copy buffer is reused from round to round
		c.HoldWrites()
		buf := make([]byte, 0, 64)
		var want []byte
		for i := range 4 {
			buf = append(buf[:0], bytes.Repeat([]byte{byte('a' + round*4 + i)}, 10+i)...)
			if n, err := c.Write(buf); n != len(buf) || err != nil {
				t.Fatalf("round %d: held write %d: %d, %v", round, i, n, err)
			}
			want = append(want, buf...)
			for j := range buf {
				buf[j] = '!' // the writer's buffer goes back to its pool and is reused
			}
		}
		if !c.Held() {
			t.Fatalf("round %d: nothing held after the writes", round)
		}
		sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _ := sc.Read(make([]byte, 1)); n != 0 {
			t.Fatalf("round %d: %d bytes reached the peer before the read", round, n)
		}
		sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		go func() {
			got := make([]byte, len(want))
			if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, want) {
				sc.Write([]byte("bad:" + string(got)))
				return
			}
			sc.Write([]byte("ok"))
		}()
		r := make([]byte, 64)
		n, err := c.Read(r)
		if err != nil || string(r[:n]) != "ok" {
			t.Fatalf("round %d: the peer got other bytes than held: %q, %v", round, r[:n], err)
		}
		if c.Held() {
			t.Fatalf("round %d: still held after the read sent them", round)
		}
	}
}

// TestHoldWritesOverTheBound: a response past MaxHeldCopy is not held: what was held goes
// out first, then the large write, in order, without waiting for a read.
func TestHoldWritesOverTheBound(t *testing.T) {
	c, sc := pair(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	c.HoldWrites()
	small := []byte("head;")
	big := bytes.Repeat([]byte("b"), MaxHeldCopy)
	want := append(append([]byte{}, small...), big...)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(want))
		io.ReadFull(sc, b)
		got <- b
	}()
	if _, err := c.Write(small); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	if c.Held() {
		t.Fatal("bytes still held after a write over the bound")
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, not the held then the large write in order", len(b))
	}
	// Holding ended with the large write: the next one goes out at once.
	if _, err := c.Write([]byte("after")); err != nil || c.Held() {
		t.Fatalf("write after the bound: %v, held %v", err, c.Held())
	}
}

// TestHoldWritesEndsAtARead: HoldWrites with nothing written ends at the next Read, so a
// later write is not held behind a read that already happened.
func TestHoldWritesEndsAtARead(t *testing.T) {
	c, sc := pair(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	c.HoldWrites()
	sc.Write([]byte("x"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("now")); err != nil || c.Held() {
		t.Fatalf("write after the read: %v, held %v", err, c.Held())
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(sc, b); err != nil || string(b) != "now" {
		t.Fatalf("peer got %q, %v", b, err)
	}
}

// TestSendHeldEndsHolding: SendHeld sends what HoldWrites kept and ends the holding;
// ReleaseHeldBuffer then lets the copy buffer go.
func TestSendHeldEndsHolding(t *testing.T) {
	c, sc := pair(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	c.HoldWrites()
	c.Write([]byte("one;"))
	if err := c.SendHeld(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("two"))
	b := make([]byte, 7)
	if _, err := io.ReadFull(sc, b); err != nil || string(b) != "one;two" {
		t.Fatalf("peer got %q, %v", b, err)
	}
	c.ReleaseHeldBuffer()
	if c.hbuf != nil {
		t.Fatal("the copy buffer is kept after ReleaseHeldBuffer")
	}
}
