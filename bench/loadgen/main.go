// Command loadgen is the benchmark suite's fallback load generator, used when wrk is not
// installed (CI machines). Like wrk it keeps -c keep-alive connections busy with a small GET
// for -d, one goroutine per connection, and it prints one tab-separated line:
//
//	requests  rps  p50_ms  p99_ms  non2xx  errors
//
// Latencies go into a log-linear histogram (1% resolution), so memory does not grow with the
// run. The numbers are comparable between proxies within one run, not with wrk's.
//
// https:// URLs are served over TLS (certificates not verified: the suite's own). -new sends
// each request on a new connection ("Connection: close"), which measures handshakes;
// -resume keeps a TLS session cache per connection slot, so those handshakes resume (as wrk
// does), and without it each one is a full handshake. The key exchange is X25519. -tls12
// caps the client at TLS 1.2, where a resumed handshake skips the key exchange (TLS 1.3
// resumption still runs one: Go's client, like browsers, offers only psk_dhe_ke).
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hist counts latencies in buckets of about 1% width from 1µs up.
type hist struct{ n [2048]uint64 }

func bucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	b := int(math.Log(us) / math.Log(1.01))
	if b >= 2048 {
		b = 2047
	}
	return b
}

func (h *hist) add(o *hist) {
	for i := range h.n {
		h.n[i] += o.n[i]
	}
}

// quantile returns the q-quantile in milliseconds.
func (h *hist) quantile(q float64) float64 {
	var total uint64
	for _, c := range h.n {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.n {
		seen += c
		if seen >= want {
			return math.Pow(1.01, float64(i)) / 1000
		}
	}
	return 0
}

type result struct {
	h            hist
	reqs, non2xx uint64
	errs         uint64
}

func main() {
	url := flag.String("url", "http://127.0.0.1:9100/", "target URL (http://host:port/path)")
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 10*time.Second, "duration")
	newConn := flag.Bool("new", false, "a new connection for every request (Connection: close)")
	resume := flag.Bool("resume", false, "with https: resume TLS sessions on new connections")
	tls12 := flag.Bool("tls12", false, "with https: TLS 1.2 at most")
	flag.Parse()
	host, path, secure, err := split(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	hdr := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: loadgen\r\n"
	if *newConn {
		hdr += "Connection: close\r\n"
	}
	req := []byte(hdr + "\r\n")
	var stop atomic.Bool
	results := make([]result, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Add(1)
		var tc *tls.Config
		if secure {
			// X25519 key exchange for every proxy (Go would offer the costlier hybrid
			// X25519MLKEM768 first, which only the Go proxies accept); P-256 is offered too
			// because OpenSSL refuses an ECDSA P-256 certificate to a client that does not
			// list that curve.
			tc = &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
			if *tls12 {
				tc.MaxVersion = tls.VersionTLS12
			}
			if *resume {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
		}
		go func(r *result) {
			defer wg.Done()
			for !stop.Load() {
				if err := conn(host, tc, req, r, &stop); err != nil {
					r.errs++
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(&results[i])
	}
	time.Sleep(*dur)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	var all result
	for i := range results {
		all.h.add(&results[i].h)
		all.reqs += results[i].reqs
		all.non2xx += results[i].non2xx
		all.errs += results[i].errs
	}
	fmt.Printf("%d\t%.1f\t%.3f\t%.3f\t%d\t%d\n", all.reqs, float64(all.reqs)/elapsed.Seconds(),
		all.h.quantile(0.50), all.h.quantile(0.99), all.non2xx, all.errs)
}

func split(u string) (host, path string, secure bool, err error) {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(u, "https://"); !ok {
			return "", "", false, fmt.Errorf("url %q: only http:// and https:// are supported", u)
		}
		secure = true
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i], rest[i:], secure, nil
	}
	return rest, "/", secure, nil
}

// conn runs requests on one keep-alive connection until stop or an error.
func conn(host string, tc *tls.Config, req []byte, r *result, stop *atomic.Bool) error {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if tc != nil {
		c, err = tls.DialWithDialer(d, "tcp", host, tc)
	} else {
		c, err = d.Dial("tcp", host)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	for !stop.Load() {
		t0 := time.Now()
		c.SetDeadline(t0.Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return err
		}
		status, closeConn, err := readResponse(br)
		if err != nil {
			return err
		}
		r.h.n[bucket(time.Since(t0))]++
		r.reqs++
		if status < 200 || status > 399 {
			r.non2xx++
		}
		if closeConn {
			return nil
		}
	}
	return nil
}

// readResponse reads one response with a Content-Length or chunked body and discards it.
func readResponse(br *bufio.Reader) (status int, closeConn bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 {
		return 0, false, fmt.Errorf("short status line %q", line)
	}
	status, _ = strconv.Atoi(string(line[9:12]))
	clen, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			clen, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closeConn = bytes.EqualFold(v, []byte("close"))
		}
	}
	if chunked {
		return status, closeConn, skipChunked(br)
	}
	if clen < 0 {
		return status, true, fmt.Errorf("response without length")
	}
	_, err = br.Discard(clen)
	return status, closeConn, err
}

func skipChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex := bytes.TrimSpace(line)
		if i := bytes.IndexByte(hex, ';'); i >= 0 {
			hex = hex[:i]
		}
		n, err := strconv.ParseInt(string(hex), 16, 64)
		if err != nil {
			return fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 {
			for { // trailers up to the blank line
				line, err = br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
