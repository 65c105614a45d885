package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// h2RawClient is an HTTP/2 client loop that allocates nothing itself: one pre-encoded
// HEADERS frame (HPACK literals that never touch the dynamic table) per request, frames read
// into fixed buffers, the connection window given back as DATA arrives. What
// testing.AllocsPerRun counts around its round trips is the gateway's (and the HTTP/2
// library's) work.
type h2RawClient struct {
	c      net.Conn
	br     *bufio.Reader
	req    []byte // the HEADERS frame; its stream id is set per request
	id     uint32
	hdr    [9]byte
	pay    []byte
	wu     [13]byte
	ack    [9]byte
	pong   [17]byte
	status byte // first byte of the HPACK block of the last response HEADERS
}

func dialH2Raw(t testing.TB, addr, path string) *h2RawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// :method GET (static 2), :scheme http (static 6), :path and :authority as literals
	// without indexing (names static 4 and 1), user-agent literal (name static 58).
	block := []byte{0x82, 0x86}
	lit := func(idx byte, v string) {
		block = append(block, idx, byte(len(v)))
		block = append(block, v...)
	}
	lit(0x04, path)
	lit(0x01, "bench.example")
	block = append(block, 0x0f, 58-15) // literal without indexing, name index 58 (4-bit prefix: 15 + 43)
	block = append(block, byte(len("bench")))
	block = append(block, "bench"...)
	f := make([]byte, 9, 9+len(block))
	f[0], f[1], f[2] = byte(len(block)>>16), byte(len(block)>>8), byte(len(block))
	f[3], f[4] = 0x1, 0x1|0x4 // HEADERS, END_STREAM|END_HEADERS
	r := &h2RawClient{c: c, br: bufio.NewReaderSize(c, 64<<10), req: append(f, block...), id: 1, pay: make([]byte, 1<<20)}
	r.wu = [13]byte{0, 0, 4, 0x8, 0, 0, 0, 0, 0}
	r.ack = [9]byte{0, 0, 0, 0x4, 0x1, 0, 0, 0, 0}
	r.pong = [17]byte{0, 0, 8, 0x6, 0x1}
	if _, err := c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 0x4, 0, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	return r
}

var errH2Raw = errors.New("unexpected frame")

// roundTrip sends one request and reads frames until its stream ends.
func (r *h2RawClient) roundTrip() error {
	binary.BigEndian.PutUint32(r.req[5:9], r.id)
	if _, err := r.c.Write(r.req); err != nil {
		return err
	}
	for {
		sid, end, err := r.frame()
		if err != nil {
			return err
		}
		if end && sid == r.id {
			r.id += 2
			return nil
		}
	}
}

// frame reads one frame and answers it (SETTINGS and PING acknowledged, the connection
// window given back for DATA); end: it ended stream sid (END_STREAM on DATA or HEADERS).
func (r *h2RawClient) frame() (sid uint32, end bool, err error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return 0, false, err
	}
	n := int(r.hdr[0])<<16 | int(r.hdr[1])<<8 | int(r.hdr[2])
	if _, err := io.ReadFull(r.br, r.pay[:n]); err != nil {
		return 0, false, err
	}
	typ, flags := r.hdr[3], r.hdr[4]
	sid = binary.BigEndian.Uint32(r.hdr[5:9]) & (1<<31 - 1)
	switch typ {
	case 0x4: // SETTINGS
		if flags&0x1 == 0 {
			_, err = r.c.Write(r.ack[:])
		}
	case 0x6: // PING
		copy(r.pong[9:], r.pay[:8])
		_, err = r.c.Write(r.pong[:])
	case 0x7, 0x3: // GOAWAY, RST_STREAM
		return sid, false, errH2Raw
	case 0x0: // DATA: give the connection window back
		if n > 0 {
			binary.BigEndian.PutUint32(r.wu[9:], uint32(n))
			_, err = r.c.Write(r.wu[:])
		}
	case 0x1:
		if n > 0 {
			r.status = r.pay[0]
		}
	}
	return sid, flags&0x1 != 0 && (typ == 0x0 || typ == 0x1), err
}

// pipeline keeps up to depth streams open at once, as h2load -m does: the requests of the
// streams that ended while a read's frames were handled go out in one write, one more
// request each time next says so, until every stream has ended.
func (r *h2RawClient) pipeline(depth int, next func() bool) error {
	open := 0
	var out []byte
	add := func() {
		binary.BigEndian.PutUint32(r.req[5:9], r.id)
		out = append(out, r.req...)
		r.id += 2
		open++
	}
	for open < depth && next() {
		add()
	}
	for open > 0 {
		if len(out) > 0 && r.br.Buffered() == 0 {
			if _, err := r.c.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		_, end, err := r.frame()
		if err != nil {
			return err
		}
		if end {
			if open--; next() {
				add()
			}
		}
	}
	return nil
}

func h2BenchConfig(backend string) string {
	return strings.Replace(benchConfig(backend, 20), "  - address: 127.0.0.1:0\n", "  - address: 127.0.0.1:0\n    protocols: [http1, h2c]\n", 1)
}

// TestH2ProxyAllocs reports the heap allocations per request proxied from an HTTP/2 client
// (h2c) to an HTTP/1.1 backend, with the access log on, and bounds them so that a change
// that adds some is seen. HTTP/2 is not held to the HTTP/1.1 path's zero: each stream's
// context (1: the server's streamCtx; the context package's own is made only when needed),
// and the HPACK decoder's strings for this client's literal fields that are not indexed
// (:path, :authority, user-agent: 3; x/net's decoder makes a string of every literal it
// does not index; h2load and curl index all but :path, so they cost 1); see docs/design.md,
// "HTTP/2 downstream: the stream's context made when needed".
func TestH2ProxyAllocs(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	addr := benchGateway(t, h2BenchConfig(rawBackend(t)), true)
	c := dialH2Raw(t, addr, "/svc19/items")
	for range 200 {
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	}
	if c.status != 0x88 { // :status 200, indexed (static 8)
		t.Fatalf("response HEADERS begin with %#x, want :status 200 (0x88)", c.status)
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if err := c.roundTrip(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f heap allocations per proxied HTTP/2 request", allocs)
	if allocs > h2AllocBudget {
		t.Fatalf("%.1f heap allocations per proxied HTTP/2 request, budget %d", allocs, h2AllocBudget)
	}
}

// h2AllocBudget is the measured count (4, docs/design.md), without a whole allocation of
// room: testing.AllocsPerRun divides as integers, so stray allocations (a pool refilled
// after a GC) below one per request on average do not count, and one more per request
// fails the test.
const h2AllocBudget = 4

// BenchmarkH2Proxy: requests proxied from one h2c connection, one at a time.
func BenchmarkH2Proxy(b *testing.B) {
	addr := benchGateway(b, h2BenchConfig(rawBackend(b)), true)
	c := dialH2Raw(b, addr, "/svc19/items")
	b.ReportAllocs()
	for b.Loop() {
		if err := c.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkH2ProxyParallel: requests proxied from several h2c connections at once (one
// stream at a time on each), with the process's CPU time per request (cpu-us/op: the
// gateway, the backend and the allocation-free clients together), steadier than ns/op on a
// shared machine.
func BenchmarkH2ProxyParallel(b *testing.B) {
	addr := benchGateway(b, h2BenchConfig(rawBackend(b)), true)
	b.ReportAllocs()
	b.SetParallelism(4)
	start := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		c := dialH2Raw(b, addr, "/svc19/items")
		for pb.Next() {
			if err := c.roundTrip(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-us/op")
}

// BenchmarkH2ProxyStreams: the streams mode of bench/h2.sh in process (h2c): four
// connections with 32 streams open on each, a new request as soon as one ends, with the
// process's CPU time per request as in BenchmarkH2ProxyParallel, and the time goroutines
// spent blocked on contended locks per request (lockwait-us/op, summed over goroutines;
// most of it is the upstream pool's lock: docs/design.md, "HTTP/2 streams mode: where the
// p99 comes from").
func BenchmarkH2ProxyStreams(b *testing.B) {
	addr := benchGateway(b, h2BenchConfig(rawBackend(b)), true)
	b.ReportAllocs()
	b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
	start, wait := processCPU(), lockWait()
	b.RunParallel(func(pb *testing.PB) {
		c := dialH2Raw(b, addr, "/svc19/items")
		if err := c.pipeline(32, pb.Next); err != nil {
			b.Error(err)
		}
	})
	b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric((lockWait()-wait)*1e6/float64(b.N), "lockwait-us/op")
}

// lockWait is the time, in seconds summed over goroutines, that the process's goroutines
// spent blocked on contended sync.Mutex and RWMutex locks so far.
func lockWait() float64 {
	s := []metrics.Sample{{Name: "/sync/mutex/wait/total:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64()
}

// processCPU is the user and system CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
