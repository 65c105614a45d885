package connpool

import (
	"context"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestDialTimeCountsAsIdle: a conn opened ahead of a request (a preconnect, or a DialH2 the
// target answered with HTTP/1.1) counts its idle age from before its dial started. The
// backend's idle timer runs from its accept, and the TLS handshake (held 150 ms by this
// backend) comes after it: the conn's idle start must be no later than the accept, and a
// request that takes it sees an idle age of at least the handshake's hold. A clock read after
// the dial would make the pool keep it up to a dial's duration past the backend's close. A
// conn dialed for the request itself still shows idle age 0.
func TestDialTimeCountsAsIdle(t *testing.T) {
	const delay = 150 * time.Millisecond
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name string
		open func(t *testing.T, p *Pool)
	}{
		{"preconnect", func(t *testing.T, p *Pool) { preconnectOne(t, p) }},
		{"DialH2 answered http/1.1", func(t *testing.T, p *Pool) {
			if c, proto, err := p.DialH2(context.Background()); c != nil || proto != "http/1.1" || err != nil {
				t.Fatalf("DialH2 = %v, %q, %v; want nil, http/1.1, nil", c, proto, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startIdleServerHeld(t, ca.ServerConfig(t, "127.0.0.1"), delay)
			p := tlsPool(t, ca, b.ln.Addr().String(), func(o *Options) { o.ALPN = &alpnRecorder{} })
			tc.open(t, p)
			p.mu.Lock()
			if len(p.idle) != 1 {
				p.mu.Unlock()
				t.Fatalf("%d idle conns, want the one opened", len(p.idle))
			}
			pre := p.idle[0]
			created, idleStart := pre.created, pre.lastUsed
			p.mu.Unlock()
			if accept := b.conn(t, 0).at; idleStart.After(accept) || !created.Equal(idleStart) {
				t.Errorf("idle start %v after the backend's accept by %v (created %v); want the dial's start, before the accept",
					idleStart.Format(time.StampMicro), idleStart.Sub(accept), created.Format(time.StampMicro))
			}
			c, err := p.Get(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
			if c.ID != pre.ID || c.IdleAge < delay {
				t.Errorf("checkout took conn %d at idle age %v; want conn %d, idle at least the handshake's %v", c.ID, c.IdleAge, pre.ID, delay)
			}
			fresh, err := p.Get(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release(fresh, Outcome{Reusable: true, KeepAliveMax: -1})
			if fresh.Reused || fresh.IdleAge != 0 {
				t.Errorf("a conn dialed for the request: reused %v, idle age %v; want new, 0", fresh.Reused, fresh.IdleAge)
			}
			p.mu.Lock()
			created = fresh.created
			p.mu.Unlock()
			if accept := b.conn(t, 1).at; created.After(accept) {
				t.Errorf("a conn dialed for the request was created %v after the backend's accept; want its dial's start", created.Sub(accept))
			}
		})
	}
}

// TestPreconnectBelowConnsReleasedDuringItsDial: the idle stack stays ordered by idle start,
// so a preconnect whose dial started before a conn was released lands below that conn (the
// top is the youngest: popLocked and refreshLocked rely on it), and is still taken first.
func TestPreconnectBelowConnsReleasedDuringItsDial(t *testing.T) {
	ca := testutil.NewCA(t)
	b := startIdleServerHeld(t, ca.ServerConfig(t, "127.0.0.1"), 150*time.Millisecond)
	p := tlsPool(t, ca, b.ln.Addr().String(), nil)
	used, err := p.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.startPreconnectLocked(time.Now())
	p.mu.Unlock()
	testutil.WaitFor(t, 5*time.Second, "the backend to accept the preconnect", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.conns) == 2
	})
	p.Release(used, Outcome{Reusable: true, KeepAliveMax: -1}) // during the preconnect's handshake
	testutil.WaitFor(t, 5*time.Second, "the preconnect to land on the idle stack", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 2
	})
	p.mu.Lock()
	bottom, top := p.idle[0], p.idle[1]
	p.mu.Unlock()
	if top != used || !bottom.pre {
		t.Fatalf("idle stack bottom %d (preconnected %v), top %d; want the preconnected conn below conn %d", bottom.ID, bottom.pre, top.ID, used.ID)
	}
	c, err := p.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
	if c != bottom {
		t.Errorf("took conn %d, want the preconnected %d first", c.ID, bottom.ID)
	}
}
