// Command edges runs the cases of issue #15 (HTTP/1.1 semantics at the edges: trailers, early
// responses, 1xx, underscores, half-closed clients, streamed chunks, HTTP/1.0 without Host)
// against Sluice, nginx and HAProxy side by side, each in front of the same scripted backend,
// and prints what each proxy did as a Markdown table (docs/benchmarks.md, "HTTP/1.1 edges").
// The proxies run with their defaults except for what the cases need: a 2 s upstream read
// timeout, and no request body size limit in nginx. Proxies not installed are left out. Only
// the processes started here are stopped.
//
//	go build -o /tmp/sluice ./cmd/sluice && go run ./bench/edges -sluice /tmp/sluice [-base /tmp/sluice-old]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// report is what the backend saw, by case id (the X-Case-Id the client sends).
var report sync.Map

func main() {
	sluice := flag.String("sluice", "", "the sluice binary (empty: leave Sluice out)")
	base := flag.String("base", "", "another sluice binary, shown as sluice-base (a change's before)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "edges")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bport := backend()
	var names []string
	results := map[string][]string{}
	for _, p := range []string{"sluice", "sluice-base", "nginx", "haproxy"} {
		bin := p
		switch p {
		case "sluice":
			bin = *sluice
		case "sluice-base":
			bin = *base
		}
		if bin == "" {
			continue
		}
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		port := freePort()
		cmd := start(p, bin, filepath.Join(dir, p), port, bport)
		if cmd == nil {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		names = append(names, p)
		for _, c := range cases {
			results[p] = append(results[p], c.run(addr, p+"-"+c.id))
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	fmt.Printf("| case | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for i, c := range cases {
		row := []string{c.name}
		for _, p := range names {
			row = append(row, results[p][i])
		}
		fmt.Printf("| %s |\n", strings.Join(row, " | "))
	}
}

type edgeCase struct {
	id, name string
	run      func(addr, id string) string
}

var cases = []edgeCase{
	{"trailers", "1. forbidden trailer fields forwarded (request / response)", trailers},
	{"early413", "2. 16 MiB upload, backend answers 413 and closes", func(addr, id string) string { return early(addr, id, "/early413") }},
	{"early401", "2. 16 MiB upload, backend answers 401 and stops reading", func(addr, id string) string { return early(addr, id, "/early401") }},
	{"hints", "3. 103 Early Hints reaches an HTTP/1.1 client", hints},
	{"processing", "3. 102 every 200 ms, no final response (read timeout 2 s)", processing},
	{"underscores", "4. X_Forwarded_For reaches the backend", underscores},
	{"halfclose", "5. GET, then the client half-closes; backend answers after 1 s", halfClose},
	{"stream", "6. first chunk of a chunked upload (the next one 1.5 s later) reaches the backend after", stream},
	{"http10", "7. HTTP/1.0 request without Host: Host sent upstream", http10},
}

// exchange sends raw on a new connection, half-closes it when halfClose, and returns what came
// back until the proxy closed the connection or wait passed, and how long that took.
func exchange(addr, raw string, halfClose bool, wait time.Duration) (string, time.Duration) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error(), 0
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, raw)
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(wait))
	out, _ := io.ReadAll(c)
	return string(out), time.Since(start)
}

func status(out string) string {
	if len(out) < 12 {
		return "no response"
	}
	return out[9:12]
}

const forbidden = "Content-Length: 5\r\nHost: evil.example\r\nConnection: close\r\nX-Forwarded-For: 6.6.6.6\r\n"

func trailers(addr, id string) string {
	out, _ := exchange(addr, "POST /trailers HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nConnection: close\r\nTE: trailers\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n"+forbidden+"\r\n", false, 5*time.Second)
	var resp []string
	if i := strings.Index(out, "\r\n0\r\n"); i >= 0 {
		resp = forbiddenIn(out[i:], "Content-Length", "Transfer-Encoding", "Set-Cookie")
	}
	req, _ := report.Load(id)
	return fmt.Sprintf("%v / %s", req, joinOrNone(resp))
}

func forbiddenIn(section string, names ...string) []string {
	var got []string
	for _, n := range names {
		if strings.Contains(strings.ToLower(section), "\r\n"+strings.ToLower(n)+":") {
			got = append(got, n)
		}
	}
	return got
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func early(addr, id, path string) string {
	const size = 16 << 20
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	start := time.Now()
	go func() {
		io.WriteString(c, "PUT "+path+" HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		c.Write(make([]byte, size))
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Sprintf("no answer in %.0fs", time.Since(start).Seconds())
		}
		return fmt.Sprintf("%v after %.1fs", err, time.Since(start).Seconds())
	}
	return fmt.Sprintf("%s in %.2fs", status(line), time.Since(start).Seconds())
}

func hints(addr, id string) string {
	out, _ := exchange(addr, "GET /hints HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nConnection: close\r\n\r\n", false, 5*time.Second)
	if strings.HasPrefix(out, "HTTP/1.1 103") {
		return "yes, then " + status(out[strings.Index(out, "\r\n\r\n")+4:])
	}
	return "no (" + status(out) + ")"
}

func processing(addr, id string) string {
	out, took := exchange(addr, "GET /processing HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nConnection: close\r\n\r\n", false, 15*time.Second)
	n := strings.Count(out, "HTTP/1.1 102")
	rest := strings.ReplaceAll(out, "HTTP/1.1 102 Processing\r\n\r\n", "")
	return fmt.Sprintf("%s after %.1fs, %d x 102 relayed", status(rest), took.Seconds(), n)
}

func underscores(addr, id string) string {
	out, _ := exchange(addr, "GET /underscores HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n", false, 5*time.Second)
	if v, ok := report.Load(id); ok {
		return v.(string)
	}
	return "refused (" + status(out) + ")"
}

func halfClose(addr, id string) string {
	out, _ := exchange(addr, "GET /halfclose HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\n\r\n", true, 5*time.Second)
	return status(out)
}

func stream(addr, id string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	sent := time.Now()
	io.WriteString(c, "POST /stream HTTP/1.1\r\nHost: h\r\nX-Case-Id: "+id+"\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	time.Sleep(1500 * time.Millisecond) // the client's pause before its next chunk
	io.WriteString(c, "0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(c)
	if v, ok := report.Load(id); ok {
		return fmt.Sprintf("%.2fs", v.(time.Time).Sub(sent).Seconds())
	}
	return "not forwarded"
}

func http10(addr, id string) string {
	exchange(addr, "GET /http10 HTTP/1.0\r\nX-Case-Id: "+id+"\r\n\r\n", false, 5*time.Second)
	if v, ok := report.Load(id); ok {
		return v.(string)
	}
	return "not forwarded"
}

// backend starts the scripted backend and returns its port. Each path plays one case.
func backend() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		head, err := readHead(br)
		if err != nil {
			return
		}
		id, path := field(head, "X-Case-Id"), strings.Fields(head)[1]
		switch path {
		case "/trailers":
			body, _ := readBody(br, head)
			i := strings.Index(body, "\r\n0\r\n")
			report.Store(id, joinOrNone(forbiddenIn(body[max(i, 0):], "Content-Length", "Host", "Connection", "X-Forwarded-For")))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: def\r\n"+
				"Content-Length: 2\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n\r\n")
		case "/early413":
			io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return // the body unread: the close resets the connection
		case "/early401":
			io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
			time.Sleep(30 * time.Second) // and reads nothing more
			return
		case "/hints":
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/processing":
			for range 40 {
				if _, err := io.WriteString(c, "HTTP/1.1 102 Processing\r\n\r\n"); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			return
		case "/underscores":
			if field(head, "X_Forwarded_For") != "" {
				report.Store(id, "forwarded")
			} else {
				report.Store(id, "dropped")
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/halfclose":
			time.Sleep(time.Second)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/stream":
			readBody(br, head)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/http10":
			if strings.Contains(strings.ToLower(head), "\r\nhost:") {
				report.Store(id, fmt.Sprintf("%q", field(head, "Host")))
			} else {
				report.Store(id, "none")
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		default:
			return
		}
	}
}

func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "\r\n" {
			return b.String(), err
		}
	}
}

// readBody reads a chunked or Content-Length body raw; for /stream it records when the first
// chunk's data came.
func readBody(br *bufio.Reader, head string) (string, error) {
	if n, err := strconv.Atoi(field(head, "Content-Length")); err == nil {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		if strings.Contains(head, "POST /stream ") { // a proxy that buffered the body
			report.Store(field(head, "X-Case-Id"), time.Now())
		}
		return string(b), err
	}
	var b strings.Builder
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			return b.String(), err
		}
		if size == 0 {
			t, err := readHead(br)
			return b.String() + t, err
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			return b.String(), err
		}
		b.Write(data)
		if first && strings.Contains(head, "POST /stream ") {
			report.Store(field(head, "X-Case-Id"), time.Now())
		}
	}
}

// field returns the value of the first header field named name in head ("" if none).
func field(head, name string) string {
	for _, l := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// freePort returns a loopback port nothing listens on, drawn from PORT_LO..PORT_LO+PORT_SPAN-1
// (environment, as bench/lib.sh; default 20000-31999). Not port 0: the kernel hands those out
// from the ephemeral range, and between this check and the proxy's bind an outgoing
// connection can take the port.
func freePort() int {
	lo, span := envInt("PORT_LO", 20000), envInt("PORT_SPAN", 12000)
	for range 200 {
		p := lo + rand.IntN(span)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	log.Fatalf("no free port in %d-%d (PORT_LO, PORT_SPAN)", lo, lo+span-1)
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// start writes the proxy's config in dir and starts it listening on port, in front of the
// backend on bport; it returns nil when the proxy did not come up.
func start(name, bin, dir string, port, bport int) *exec.Cmd {
	os.MkdirAll(dir, 0o755)
	var cmd *exec.Cmd
	switch name {
	case "sluice", "sluice-base":
		cfg := filepath.Join(dir, "sluice.yaml")
		os.WriteFile(cfg, fmt.Appendf(nil, `listeners: [{address: "127.0.0.1:%d"}]
upstreams: [{id: b, targets: [{address: "127.0.0.1:%d"}], timeouts: {read: 2s}}]
routes: [{id: all, upstream: b}]
log: {level: error, access: "off"}
admin: {enabled: false}
`, port, bport), 0o644)
		cmd = exec.Command(bin, "run", "-c", cfg)
	case "nginx":
		cfg := filepath.Join(dir, "nginx.conf")
		user := ""
		if os.Getuid() == 0 {
			user = "user root;"
		}
		os.WriteFile(cfg, fmt.Appendf(nil, `%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log crit;
events {}
http {
    access_log off;
    client_max_body_size 0;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream b { server 127.0.0.1:%[4]d; keepalive 16; }
    server {
        listen 127.0.0.1:%[3]d;
        location / {
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 2s;
        }
    }
}
`, user, dir, port, bport), 0o644)
		cmd = exec.Command(bin, "-p", dir+"/", "-e", "stderr", "-c", cfg, "-g", "daemon off;")
	case "haproxy":
		cfg := filepath.Join(dir, "haproxy.cfg")
		os.WriteFile(cfg, fmt.Appendf(nil, `defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 2s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server s1 127.0.0.1:%d
`, port, bport), 0o644)
		cmd = exec.Command(bin, "-db", "-f", cfg)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Printf("%s: %v", name, err)
		return nil
	}
	for range 100 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Printf("%s did not listen", name)
	cmd.Process.Kill()
	cmd.Wait()
	return nil
}
