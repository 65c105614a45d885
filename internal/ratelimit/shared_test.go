package ratelimit

import (
	"testing"
	"time"
)

// TestShared: an unchanged limit is handed to the next generation with its counts; a
// changed one is new; the entry goes when its last holder releases it, and an old holder's
// release does not drop a newer entry.
func TestShared(t *testing.T) {
	var s Shared
	rule := Rule{Algorithm: FixedWindow, Limit: 1, Window: time.Hour}
	a, relA := s.Local("x", rule, 10)
	b, relB := s.Local("x", rule, 10)
	if a != b {
		t.Fatal("an unchanged limit was not shared")
	}
	changed := rule
	changed.Limit = 2
	c, relC := s.Local("x", changed, 10)
	if c == a {
		t.Fatal("a changed limit was shared")
	}
	relA()
	relB()
	relB() // twice: no effect
	if d, relD := s.Local("x", changed, 10); d != c {
		t.Fatal("the old holders' releases dropped the newer entry")
	} else {
		relD()
	}
	relC()
	if e, _ := s.Local("x", changed, 10); e == c {
		t.Fatal("the entry outlived its last holder")
	}
	k1, _ := s.Concurrency("y", 2, 10)
	k2, _ := s.Concurrency("y", 2, 10)
	if k1 != k2 {
		t.Fatal("an unchanged concurrency limit was not shared")
	}
}
