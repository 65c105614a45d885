package config

import (
	"os"
	"testing"
	"time"
)

// TestHTTP2Defaults: an HTTP/2 listener gets the defaults of the fields it omits and keeps
// those it sets; a listener without h2 or h2c gets no HTTP/2 settings.
func TestHTTP2Defaults(t *testing.T) {
	data, err := os.ReadFile("testdata/http2.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("http2.good.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Listeners[0].HTTP2
	want := HTTP2{MaxConcurrentStreams: 250, StreamWindowBytes: 262144, ConnWindowBytes: DefaultH2ConnWindowBytes,
		MaxFrameBytes: 16384, MaxResetsPerSecond: DefaultH2MaxResetsPerSecond, MaxControlFramesPerSecond: DefaultH2MaxControlFramesPerSecond,
		MaxEmptyFramesPerSecond: DefaultH2MaxEmptyFramesPerSecond, MaxContinuationFrames: DefaultH2MaxContinuationFrames,
		DrainWait: Duration(500 * time.Millisecond)}
	if h != want {
		t.Fatalf("http2 = %+v\nwant   %+v", h, want)
	}
	if !c.Listeners[0].HasProtocol(ProtoH2C) || c.Listeners[0].HasProtocol(ProtoH2) {
		t.Fatal("HasProtocol")
	}
	plain, err := Parse("p.yaml", []byte("listeners: [{address: \":80\"}]\nupstreams: [{id: a, targets: [{address: \"10.0.0.1:80\"}]}]\nroutes: [{id: r, upstream: a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := plain.Listeners[0]; l.HTTP2 != (HTTP2{}) || !l.HasProtocol(ProtoHTTP1) || l.HasProtocol(ProtoH2C) {
		t.Fatalf("plain listener: %+v", l)
	}
}

// TestH2MaxDrainingDefault: h2.max_draining defaults to max_conns, and an explicit 0 is
// kept (draining connections then count against max_conns).
func TestH2MaxDrainingDefault(t *testing.T) {
	for _, tc := range []struct {
		h2   string
		want int
	}{{"{max_conns: 4}", 4}, {"{}", 0}, {"{max_conns: 4, max_draining: 0}", 0}, {"{max_conns: 2, max_draining: 8}", 8}} {
		c, err := Parse("u.yaml", []byte("listeners: [{address: \":80\"}]\nupstreams: [{id: a, protocol: h2c, targets: [{address: \"10.0.0.1:80\"}], h2: "+tc.h2+"}]\nroutes: [{id: r, upstream: a}]\n"))
		if err != nil {
			t.Fatalf("h2 %s: %v", tc.h2, err)
		}
		if h := c.Upstreams[0].H2; *h.MaxDraining != tc.want || h.Draining() != tc.want {
			t.Errorf("h2 %s: max_draining %d; want %d", tc.h2, *h.MaxDraining, tc.want)
		}
	}
}
