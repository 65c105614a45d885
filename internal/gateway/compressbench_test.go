package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkCompress is a whole request through the gateway for a 16 KiB JSON body (with
// Content-Length), not compressed (identity) and in each coding at the default levels, on
// ports 21000-21001. ns/op, B/op and allocs/op are the process's (client, gateway and
// backend): the difference from identity is compression's.
func BenchmarkCompress(b *testing.B) {
	big := compressBody(16 << 10)
	ln, err := net.Listen("tcp", "127.0.0.1:21001")
	if err != nil {
		b.Skip(err)
	}
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	}))
	be.Listener.Close()
	be.Listener = ln
	be.Start()
	b.Cleanup(be.Close)
	cfg := strings.Replace(compressConfig, "{{extra}}", "", 1)
	cfg = strings.Replace(cfg, "127.0.0.1:0, protocols", "127.0.0.1:21000, protocols", 1)
	cfg = strings.Replace(cfg, "admin: {address: 127.0.0.1:0}\n", "log: {access: \"off\"}\n", 1)
	addr := benchGateway(b, strings.Replace(cfg, "{{b}}", hostport(be), 1), false)
	tr := &http.Transport{DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	for _, enc := range []string{"identity", "gzip", "zstd", "br"} {
		b.Run(enc, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(big)))
			req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
			req.Header.Set("Accept-Encoding", enc)
			var n int64
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(n), "wire-bytes")
		})
	}
}
