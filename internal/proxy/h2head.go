package proxy

// The upstream request head of an HTTP/2 attempt. writeHead (request.go) renders it as the
// HTTP/1.1 path sends it, so that one place decides the forwarded fields; h2Head turns that
// rendering into the http.Request the HTTP/2 client takes. It used http.ReadRequest until
// issue #16's profile: 24 of the ~55 allocations of a gRPC unary call's attempt were the
// re-parse (a bufio.Reader, textproto's per-line strings and its header map, the
// Request copies of WithContext). Here the head becomes one string and every name, value
// and path is a slice of it; what stays allocated is that string, the URL, the header map
// with one slice for all its values, the Request, and a canonical name for a field that is
// neither canonical already nor one of textproto's common names. The head is writeHead's:
// the checks are the ones ReadRequest made that such a head can fail (a rewrite or plugin
// that set an invalid name or value), answered 400 as before.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"sluice/internal/upstream"
)

// h2Head is where the upstream request head is rendered; pooled, so that its bufio buffer
// (4 KiB) is not allocated per request.
type h2Head struct {
	buf bytes.Buffer
	w   *bufio.Writer
}

var h2Heads = sync.Pool{New: func() any {
	h := new(h2Head)
	h.w = bufio.NewWriter(&h.buf)
	return h
}}

// errH2Head is the cause of a head the HTTP/2 request could not be made from.
var errH2Head = errors.New("malformed request head for HTTP/2")

// h2Request renders the upstream request head as the HTTP/1.1 path writes it and makes it
// the HTTP/2 client's request, with ctx as its context.
func (f *forward) h2Request(ctx context.Context, t *upstream.Target) (*http.Request, error) {
	h := h2Heads.Get().(*h2Head)
	defer h2Heads.Put(h)
	h.buf.Reset()
	h.w.Reset(&h.buf)
	if err := f.writeHead(h.w, t); err != nil {
		return nil, err
	}
	h.w.Flush()
	req, err := parseH2Head(ctx, h.buf.String()) // the one copy: everything points into it
	if err != nil {
		return nil, fmt.Errorf("request head for HTTP/2: %w", err)
	}
	if f.teTrail {
		req.Header["Te"] = teTrailers // gRPC requires it; the only TE HTTP/2 allows
	}
	req.URL.Scheme, req.URL.Host = "http", t.Addr
	if t.H2.TLS() {
		req.URL.Scheme = "https"
	}
	req.ContentLength = f.req.ContentLength
	if f.req.Chunked {
		req.ContentLength = -1
	}
	return req, nil
}

// teTrailers is the TE field of a request whose client said it takes trailers (read only:
// the library does not write to a request's header).
var teTrailers = []string{"trailers"}

// parseH2Head reads a head as writeHead renders it ("METHOD target HTTP/1.1", then
// "Name: value" lines, each ending in CRLF, then an empty line) into a request for the
// HTTP/2 client. Host becomes req.Host (unless the target is in absolute form, as
// ReadRequest does; a second Host is refused); the fields HTTP/2 forbids (RFC 9113 §8.2.2: connection-specific ones;
// TE is set by the caller) are left out.
func parseH2Head(ctx context.Context, head string) (*http.Request, error) {
	line, rest, ok := strings.Cut(head, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok || !ok1 || !ok2 || proto != "HTTP/1.1" || !httpguts.ValidHeaderFieldName(method) {
		return nil, fmt.Errorf("%w: request line %q", errH2Head, line)
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errH2Head, err)
	}
	n := strings.Count(rest, "\r\n") // one more than there are fields
	hdr := make(http.Header, n)
	vals := make([]string, 0, n) // every field's value, each key's slice a window on it
	host, hosts := u.Host, 0
	for {
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok {
			return nil, fmt.Errorf("%w: no end of the head", errH2Head)
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		value = strings.Trim(value, " \t") // OWS only: textproto.TrimString would also hide a bare CR or LF at either end
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("%w: field %q", errH2Head, line)
		}
		name = textproto.CanonicalMIMEHeaderKey(name) // no allocation when canonical or common
		switch name {
		case "Host":
			// More than one is refused, as ReadRequest did ("too many Host headers"):
			// writeHead writes one, so a second is a plugin's, and taking either silently
			// would send the upstream an authority someone did not choose.
			if hosts++; hosts > 1 {
				return nil, fmt.Errorf("%w: more than one Host field", errH2Head)
			}
			if host == "" {
				host = value
			}
			continue
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			continue
		}
		if vs, ok := hdr[name]; ok {
			hdr[name] = append(vs, value)
			continue
		}
		vals = append(vals, value)
		hdr[name] = vals[len(vals)-1 : len(vals) : len(vals)] // an append to it copies
	}
	req := &http.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, Host: host,
	}
	return req.WithContext(ctx), nil
}
