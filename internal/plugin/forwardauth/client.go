package forwardauth

// The check. For each request the gateway sends the auth service a GET to its URL with no
// body: the client request's chosen headers (Authorization, Cookie, ...) plus the request's
// identity in X-Forwarded-Method, -Proto, -Host, -Uri and -For, which the gateway sets itself
// (a client's own X-Forwarded-* is never passed on, so it cannot claim another URI). The
// answer decides:
//
//   - 2xx: allowed. The configured response headers (X-User-Id, ...) are returned for the
//     upstream request; the body is drained (bounded) so the connection is reused.
//   - 3xx, 4xx: denied. The client gets the auth service's status, its body (at most
//     MaxBodyBytes) and the configured client headers (WWW-Authenticate, Location for a
//     login redirect, Set-Cookie). Redirects are never followed.
//   - 5xx, refused, reset, bad response: 503 auth_unavailable.
//   - no answer within Timeout (or the request's own deadline, whichever comes first): 504
//     auth_timeout. A client that went away cancels the check.
//
// The client is net/http with its own pooled Transport (keep-alive): this is a side call,
// not the proxy path, and a new connection per check would double its latency.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Defaults of [Options].
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMaxBodyBytes = 64 << 10
	DefaultMaxIdleConns = 64
)

// Outcome codes, also the reason codes of gateway-made answers (docs/errors.md).
const (
	CodeAllowed     = "allowed"
	CodeDenied      = "auth_denied"
	CodeUnavailable = "auth_unavailable"
	CodeTimeout     = "auth_timeout"
	CodeCanceled    = "client_gone"
)

// Options configure a [Client].
type Options struct {
	// URL is the auth service's endpoint (http or https).
	URL string
	// Timeout bounds one check; the request's deadline bounds it too.
	Timeout time.Duration
	// RequestHeaders are the client request's headers the caller puts in [Request.Header].
	RequestHeaders []string
	// ResponseHeaders are copied from a 2xx answer to the upstream request.
	ResponseHeaders []string
	// ClientHeaders are copied from a non-2xx answer to the client.
	ClientHeaders []string
	// ConsumerHeader names the header of a 2xx answer that names the consumer ("": none).
	ConsumerHeader string
	// MaxBodyBytes bounds the denial body passed to the client.
	MaxBodyBytes int64
	// MaxIdleConns bounds the idle keep-alive connections to the auth service.
	MaxIdleConns int
	// Transport, when set, replaces the client's own (tests, TLS settings).
	Transport http.RoundTripper
}

// Request is what the check says about the client request.
type Request struct {
	Method, Proto, Host, URI, ClientIP string
	// Header holds the client headers to send (already chosen by the caller).
	Header http.Header
}

// Decision is a check's outcome.
type Decision struct {
	// Code is CodeAllowed, CodeDenied, CodeUnavailable, CodeTimeout or CodeCanceled.
	Code string
	// Status is the status to answer the client with (the auth service's on a denial, 503
	// or 504 on a failure); 0 when allowed.
	Status int
	// Header holds, when allowed, the configured response headers to set on the upstream
	// request (a name absent from the answer maps to no values: remove it); when denied, the
	// configured client headers plus Content-Type.
	Header http.Header
	// Body is the denial body (bounded).
	Body []byte
	// Consumer is the value of the ConsumerHeader of a 2xx answer.
	Consumer string
	// Err is the cause of a failure, for logs.
	Err error
}

// Client asks the auth service. It is safe for concurrent use.
type Client struct {
	o      Options
	target *url.URL
	hc     *http.Client
}

// NewClient returns a Client, or an error when the URL cannot be used.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("address %q: want an http:// or https:// URL with a host", u.Redacted())
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = DefaultMaxIdleConns
	}
	for i, h := range o.ResponseHeaders {
		o.ResponseHeaders[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	for i, h := range o.ClientHeaders {
		o.ClientHeaders[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			MaxIdleConns: o.MaxIdleConns, MaxIdleConnsPerHost: o.MaxIdleConns,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true,
			ForceAttemptHTTP2: true, TLSHandshakeTimeout: o.Timeout,
		}
	}
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return &Client{o: o, target: u, hc: hc}, nil
}

// HopByHop reports whether name is a header a check never copies either way: connection
// framing (RFC 9110 section 7.6.1), the body's length and the Host.
func HopByHop(name string) bool {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Host":
		return true
	}
	return false
}

// Check asks the auth service about r within ctx and the configured timeout.
func (c *Client) Check(ctx context.Context, r *Request) Decision {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.URL, nil)
	if err != nil {
		return Decision{Code: CodeUnavailable, Status: http.StatusServiceUnavailable, Err: err}
	}
	for name, vals := range r.Header {
		if !HopByHop(name) && !strings.HasPrefix(name, "X-Forwarded-") {
			req.Header[name] = vals
		}
	}
	req.Header.Set("X-Forwarded-Method", r.Method)
	req.Header.Set("X-Forwarded-Proto", r.Proto)
	req.Header.Set("X-Forwarded-Host", r.Host)
	req.Header.Set("X-Forwarded-Uri", r.URI)
	if r.ClientIP != "" {
		req.Header.Set("X-Forwarded-For", r.ClientIP)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.failure(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, c.o.MaxBodyBytes))
		h := make(http.Header, len(c.o.ResponseHeaders))
		for _, name := range c.o.ResponseHeaders {
			h[name] = resp.Header[name]
		}
		d := Decision{Code: CodeAllowed, Header: h}
		if c.o.ConsumerHeader != "" {
			d.Consumer = resp.Header.Get(c.o.ConsumerHeader)
		}
		return d
	}
	if resp.StatusCode >= 500 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, c.o.MaxBodyBytes))
		return Decision{Code: CodeUnavailable, Status: http.StatusServiceUnavailable,
			Err: fmt.Errorf("auth service answered %d", resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxBodyBytes))
	if err != nil {
		return c.failure(ctx, fmt.Errorf("read denial body: %w", err))
	}
	h := make(http.Header, len(c.o.ClientHeaders)+1)
	for _, name := range c.o.ClientHeaders {
		if v := resp.Header[name]; len(v) > 0 {
			h[name] = v
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && len(body) > 0 {
		h.Set("Content-Type", ct)
	}
	return Decision{Code: CodeDenied, Status: resp.StatusCode, Header: h, Body: body}
}

// failure classifies a check that got no usable answer.
func (c *Client) failure(ctx context.Context, err error) Decision {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return Decision{Code: CodeCanceled, Status: 499, Err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), isTimeout(err):
		return Decision{Code: CodeTimeout, Status: http.StatusGatewayTimeout, Err: err}
	}
	return Decision{Code: CodeUnavailable, Status: http.StatusServiceUnavailable, Err: err}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// Close releases the idle connections to the auth service.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
