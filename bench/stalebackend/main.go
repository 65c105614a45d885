// Command stalebackend is the backend of the benchmark suite's stale-connection scenario
// (docs/benchmarks.md, /work/shared/INCIDENTS.md, incident 2). It closes a keep-alive
// connection once it has been idle for -idle (T), and it races its own idle timer the way a
// real server does: a request that arrives on a connection idle for at least T-eps is dropped
// unread and the connection reset, as when the server's close and the proxy's write cross on
// the wire. It counts the X-Request-Id of every request it processed; GET /__stats answers
// {"accepts":A,"processed":N,"duplicates":D,"dropped":X,"idle_closes":Y}, where duplicates counts
// requests processed more than once (an unsafe retry by the proxy).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

type stats struct {
	mu         sync.Mutex
	seen       map[string]int
	accepts    int
	processed  int
	duplicates int
	dropped    int
	idleCloses int
}

func (s *stats) record(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processed++
	if id == "" {
		return
	}
	s.seen[id]++
	if s.seen[id] > 1 {
		s.duplicates++
	}
}

func (s *stats) count(p *int) {
	s.mu.Lock()
	*p++
	s.mu.Unlock()
}

func (s *stats) json() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(map[string]int{"accepts": s.accepts, "processed": s.processed, "duplicates": s.duplicates,
		"dropped": s.dropped, "idle_closes": s.idleCloses})
	return b
}

type backend struct {
	idle, eps time.Duration
	body      []byte
	st        stats
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9110", "listen address")
	idle := flag.Duration("idle", time.Second, "idle timeout T of keep-alive connections")
	eps := flag.Duration("eps", 100*time.Millisecond, "race window: a request arriving after T-eps of idleness is dropped and the connection reset")
	size := flag.Int("size", 300, "response body bytes")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	b := &backend{idle: *idle, eps: *eps, body: make([]byte, *size), st: stats{seen: map[string]int{}}}
	for i := range b.body {
		b.body[i] = 'x'
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.st.count(&b.st.accepts)
		go b.serve(c.(*net.TCPConn))
	}
}

// serve runs one connection's request loop under the idle rule.
func (b *backend) serve(c *net.TCPConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	last := time.Now()
	for {
		c.SetReadDeadline(last.Add(b.idle))
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				b.st.count(&b.st.idleCloses) // FIN; a later request on it meets a RST
			}
			return
		}
		if time.Since(last) >= b.idle-b.eps {
			b.st.count(&b.st.dropped)
			c.SetLinger(0) // RST, request unread
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		body := b.body
		if req.URL.Path == "/__stats" {
			body = b.st.json()
		} else {
			b.st.record(req.Header.Get("X-Request-Id"))
		}
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body))
		bw.Write(body)
		if err := bw.Flush(); err != nil {
			return
		}
		if req.Close {
			return
		}
		last = time.Now()
	}
}
