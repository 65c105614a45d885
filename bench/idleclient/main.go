// Command idleclient opens N keep-alive connections to a proxy, sends one small GET on each,
// reads the response, and then holds every connection idle until it is told to stop (stdin
// closes or -hold passes). It prints "ready N" once all connections are idle. -tls speaks
// TLS (any certificate accepted: the proxy's is a throwaway one).
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9201", "proxy address")
	n := flag.Int("n", 10000, "connections")
	hold := flag.Duration("hold", 60*time.Second, "how long to hold the connections idle")
	useTLS := flag.Bool("tls", false, "connect with TLS")
	flag.Parse()
	dial := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", *addr, 10*time.Second)
		if err != nil || !*useTLS {
			return c, err
		}
		return tls.Client(c, &tls.Config{InsecureSkipVerify: true}), nil
	}

	conns := make([]net.Conn, 0, *n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	failed := 0
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial()
			if err == nil {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
			}
			if err == nil {
				var resp *http.Response
				resp, err = http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if c != nil {
					c.Close()
				}
				return
			}
			c.SetDeadline(time.Time{})
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	fmt.Printf("ready %d failed %d\n", len(conns), failed)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(*hold):
	}
	for _, c := range conns {
		c.Close()
	}
}
