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
