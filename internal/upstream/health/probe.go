package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"sluice/internal/connpool"
	"sluice/internal/upstream"
)

// maxProbeBody is how much of a probe response body BodyContains searches.
const maxProbeBody = 64 << 10

// TCPProbe checks that a TCP connection to the target can be opened and, when the target's
// pool is TLS, that the TLS handshake completes with the pool's config (trust, client
// certificate, server name, session cache): a backend whose port is open but whose
// certificate the pool would refuse, or which does not speak TLS, is not healthy.
type TCPProbe struct{}

// Check implements upstream.Checker. ctx bounds the whole probe.
func (TCPProbe) Check(ctx context.Context, t *upstream.Target) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fmt.Errorf("tcp connect: %w", err)
	}
	defer c.Close()
	tc, err := probeTLS(ctx, c, t, t.H2 != nil)
	if err != nil || tc == nil {
		return err
	}
	// A clean close_notify, so that the backend logs an orderly close, not a reset.
	return tc.Close()
}

// probeTLS runs the TLS handshake on c, a new connection to t, when t's pool is TLS (nil
// otherwise), under ctx's deadline. On failure c is left for the caller to close. The pool's
// config offers ALPN "http/1.1" alone; h2 also offers "h2" (the TCP probe of an h2 or auto
// upstream, which sends nothing: a backend serving only h2 may refuse "http/1.1" alone).
func probeTLS(ctx context.Context, c net.Conn, t *upstream.Target, h2 bool) (*tls.Conn, error) {
	if t.Pool == nil || t.Pool.TLSConfig() == nil {
		return nil, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cfg := connpool.ConnConfig(t.Pool.TLSConfig())
	if h2 {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// HTTPProbe sends one HTTP/1.1 GET on a fresh connection ("Connection: close", never the
// data-path pool, so a probe neither uses nor disturbs pooled connections) and checks the
// status and, optionally, the body. Over TLS when the target's pool is TLS, with the pool's
// TLS config: the same trust, client certificate, server name and session cache.
type HTTPProbe struct {
	// Path is the request target, such as "/healthz".
	Path string
	// Host is the Host header ("": the target address).
	Host string
	// Expected are the healthy statuses (empty: 200-399).
	Expected []int
	// BodyContains, if set, must appear in the first 64 KiB of the body.
	BodyContains string
}

// Check implements upstream.Checker. ctx bounds the whole probe.
func (h *HTTPProbe) Check(ctx context.Context, t *upstream.Target) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fmt.Errorf("http connect: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if tc, err := probeTLS(ctx, c, t, false); err != nil {
		return err
	} else if tc != nil {
		c = tc
	}
	host := h.Host
	if host == "" {
		host = t.Addr
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return probeErr(ctx, "http write", err)
	}
	br := bufio.NewReader(c)
	var resp *http.Response
	for {
		if resp, err = http.ReadResponse(br, nil); err != nil {
			return probeErr(ctx, "http read response", err)
		}
		// An interim answer (1xx but 101, RFC 9110 §15.2: 103 Early Hints) precedes the
		// answer; the deadline bounds a backend that sends nothing else.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	defer resp.Body.Close()
	if !h.statusOK(resp.StatusCode) {
		return fmt.Errorf("http status %d", resp.StatusCode)
	}
	if h.BodyContains != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
		if err != nil {
			return probeErr(ctx, "http read body", err)
		}
		if !strings.Contains(string(body), h.BodyContains) {
			return fmt.Errorf("http body lacks %q", h.BodyContains)
		}
	}
	return nil
}

// probeErr is the error of a probe's step that failed with err: at ctx's end, the probe's
// timeout (the connection's deadline is ctx's, and the probe closes the connection when ctx
// ends, which err reports as a use of a closed connection).
func probeErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: no answer within the check's timeout: %w", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

func (h *HTTPProbe) statusOK(s int) bool {
	if len(h.Expected) == 0 {
		return s >= 200 && s <= 399
	}
	for _, e := range h.Expected {
		if e == s {
			return true
		}
	}
	return false
}

var (
	_ upstream.Checker = TCPProbe{}
	_ upstream.Checker = (*HTTPProbe)(nil)
)
