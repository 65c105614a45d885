package probe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"sluice/internal/config"
)

// Defaults of [Options] fields left zero.
const (
	DefaultPath        = "/"
	DefaultMaxWait     = 120 * time.Second
	DefaultMaxRequests = 200
	DefaultDialTimeout = 5 * time.Second
	DefaultReadTimeout = 10 * time.Second
	DefaultWatchers    = 3
)

// Options shape one probe. The zero value probes "/" with the defaults above.
type Options struct {
	// Path is the request target of every probe request. Default "/".
	Path string
	// Host is the Host header. Default: the target address.
	Host string
	// MaxWait bounds the idle phase: if no idle connection is closed within it, the
	// backend is reported as keeping connections at least that long. Default 120s.
	MaxWait time.Duration
	// MaxRequests is how many sequential requests the limit phase sends on one
	// connection. Default 200.
	MaxRequests int
	// DialTimeout bounds each connect, TLS handshake included. Default 5s.
	DialTimeout time.Duration
	// TLS, when set, makes every probe connection speak TLS with this config (its
	// ServerName is the name sent and verified). nil: plain TCP.
	TLS *tls.Config
	// UpstreamTLS gives [CheckConfig] the TLS config of a TLS upstream's target address (the
	// gateway's own, so that the probe trusts and presents what the pools do). nil: TLS
	// upstreams cannot be probed and say so.
	UpstreamTLS func(u config.Upstream, address string) (*tls.Config, error)
	// ReadTimeout bounds each request/response exchange. Default 10s.
	ReadTimeout time.Duration
	// Watchers is how many connections are opened together at the start of the idle phase
	// (more connections are added on a ladder, see doc.go). Default 3.
	Watchers int
	// Progress, when set, is told what the probe is doing while it measures (the idle
	// phase can take MaxWait): each phase as it starts, what it learned, and every
	// ProgressEvery what it is still waiting for. The idle and request-limit phases run at
	// once, so it may be called from two goroutines at the same time.
	Progress func(msg string)
	// ProgressEvery is the interval of the idle phase's "still waiting" lines. Default 5s.
	ProgressEvery time.Duration
}

// progress reports a step to o.Progress, if set.
func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

func (o Options) withDefaults(addr string) Options {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Host == "" {
		o.Host = addr
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = DefaultMaxRequests
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Watchers <= 0 {
		o.Watchers = DefaultWatchers
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	return o
}

// request is the probe request: a GET that asks nothing special of the backend.
func (o *Options) request() []byte {
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-probe\r\nAccept: */*\r\n\r\n", o.Path, o.Host)
}

// Duration is a time.Duration that is written to JSON as milliseconds.
type Duration time.Duration

// MarshalJSON writes d as a number of milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(float64(d)/float64(time.Microsecond)) / 1000)
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Result is what one probe found out about a backend's keep-alive behaviour.
type Result struct {
	// Target is the host:port probed; Path and Host are the request's.
	Target string `json:"target"`
	Path   string `json:"path"`
	Host   string `json:"host"`
	// Status is the status code of the first response.
	Status int `json:"status"`
	// Connection and KeepAlive are the first response's header values ("" if absent).
	Connection string `json:"connection_header,omitempty"`
	KeepAlive  string `json:"keep_alive_header,omitempty"`
	// AdvertisedTimeout is Keep-Alive: timeout=N; 0 if not advertised.
	AdvertisedTimeout Duration `json:"advertised_timeout_ms,omitempty"`
	// AdvertisedMax is Keep-Alive: max=N; -1 if not advertised.
	AdvertisedMax int `json:"advertised_max"`
	// KeepsAlive reports that a second request on the first connection was answered.
	KeepsAlive bool `json:"keeps_alive"`
	// NoKeepAlive says why KeepsAlive is false.
	NoKeepAlive string `json:"no_keep_alive_reason,omitempty"`
	// Idle and Limit are the two measurements; nil when the backend does not keep alive.
	Idle  *IdleResult  `json:"idle,omitempty"`
	Limit *LimitResult `json:"request_limit,omitempty"`
	// Elapsed is how long the probe took.
	Elapsed Duration `json:"elapsed_ms"`
}

// IdleResult is the measured idle timeout.
type IdleResult struct {
	// Observed reports that the backend closed an idle connection within MaxWait.
	Observed bool `json:"observed"`
	// Timeout is the shortest idle age at which the backend closed a connection; 0 when
	// not observed.
	Timeout Duration `json:"timeout_ms"`
	// Longest is the longest idle age at which a watched connection was closed.
	Longest Duration `json:"longest_ms"`
	// Samples are the idle ages of every close observed, ascending.
	Samples []Duration `json:"samples_ms"`
	// OpenPastSlack counts connections still open well after Timeout (slack: doc.go).
	OpenPastSlack int `json:"open_past_slack"`
	// CheckAge is the idle age at which a request was sent on a connection to confirm
	// that the backend still serves just below Timeout; 0 if no check was made.
	CheckAge Duration `json:"check_age_ms,omitempty"`
	// CheckOK reports that the check request was answered.
	CheckOK bool `json:"check_ok"`
	// MaxWait is the bound of the idle phase.
	MaxWait Duration `json:"max_wait_ms"`
}

// LimitResult is the measured per-connection request limit.
type LimitResult struct {
	// Limit is the number of requests after which the backend closed the connection or
	// said Connection: close; 0 when it did neither within Tried requests.
	Limit int `json:"limit"`
	// Signalled reports that the last response said Connection: close (false: the backend
	// closed silently and the next request failed).
	Signalled bool `json:"signalled"`
	// Tried is the number of requests that could be sent (Options.MaxRequests).
	Tried int `json:"tried"`
}

// Probe finds out the keep-alive behaviour of the HTTP/1.1 backend at addr (host:port):
// whether it keeps connections alive, its idle timeout and its per-connection request
// limit. The idle and limit phases run in parallel; the whole probe takes about the idle
// timeout plus a little, and at most about MaxWait. An error means the backend could not
// be probed at all (unreachable, or not answering HTTP).
func Probe(ctx context.Context, addr string, o Options) (*Result, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("probe target %q: %w", addr, err)
	}
	o = o.withDefaults(addr)
	start := time.Now()
	r := &Result{Target: addr, Path: o.Path, Host: o.Host, AdvertisedMax: -1}
	if err := basic(ctx, addr, &o, r); err != nil {
		return nil, err
	}
	if !r.KeepsAlive {
		o.progress("%s: does not keep connections alive (%s)", addr, r.NoKeepAlive)
	}
	if r.KeepsAlive {
		o.progress("%s: keeps connections alive; measuring its idle timeout (waiting up to %s for it to close idle connections) and its request limit (up to %d requests)",
			addr, o.MaxWait, o.MaxRequests)
		var wg sync.WaitGroup
		var idleErr, limitErr error
		wg.Go(func() { r.Idle, idleErr = measureIdle(ctx, addr, &o) })
		wg.Go(func() { r.Limit, limitErr = measureLimit(ctx, addr, &o) })
		wg.Wait()
		if err := errors.Join(idleErr, limitErr); err != nil {
			return nil, err
		}
	}
	r.Elapsed = Duration(time.Since(start))
	return r, nil
}

// basic sends two requests on one connection: the first response's headers tell what the
// backend advertises, the second shows whether it really keeps the connection.
func basic(ctx context.Context, addr string, o *Options, r *Result) error {
	c, err := dial(ctx, addr, o)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.roundTrip(o.ReadTimeout); err != nil {
		return fmt.Errorf("probe %s: first request: %w", addr, err)
	}
	r.Status = c.resp.Status
	r.Connection = joinValues(c, "Connection")
	r.KeepAlive = joinValues(c, "Keep-Alive")
	r.AdvertisedTimeout = Duration(c.resp.KeepAliveTimeout)
	r.AdvertisedMax = c.resp.KeepAliveMax
	switch {
	case c.resp.UntilClose:
		r.NoKeepAlive = "the response body is delimited by closing the connection"
		return nil
	case c.resp.Close && c.resp.Minor == 0:
		r.NoKeepAlive = "HTTP/1.0 response without Connection: keep-alive"
		return nil
	case c.resp.Close:
		r.NoKeepAlive = "the first response says Connection: close"
		return nil
	}
	err = c.roundTrip(o.ReadTimeout)
	switch {
	case errors.Is(err, errClosedBeforeResponse):
		r.NoKeepAlive = "the backend closed the connection after the first response without saying Connection: close"
	case err != nil:
		return fmt.Errorf("probe %s: second request: %w", addr, err)
	default:
		r.KeepsAlive = true
	}
	return nil
}

// joinValues returns every value of the header field name in the current response, joined
// by ", ".
func joinValues(c *conn, name string) string {
	var vals []string
	for _, f := range c.resp.Header.Fields {
		if strings.EqualFold(string(f.Name), name) {
			vals = append(vals, string(f.Value))
		}
	}
	return strings.Join(vals, ", ")
}

// measureLimit sends up to MaxRequests sequential requests on one connection and reports
// after how many the backend ended it.
func measureLimit(ctx context.Context, addr string, o *Options) (*LimitResult, error) {
	c, err := dial(ctx, addr, o)
	if err != nil {
		return nil, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	lr := &LimitResult{Tried: o.MaxRequests}
	for i := 1; i <= o.MaxRequests; i++ {
		err := c.roundTrip(o.ReadTimeout)
		switch {
		case errors.Is(err, errClosedBeforeResponse) && i > 1:
			lr.Limit = i - 1
			o.progress("%s: request limit: the connection was closed after %d requests", addr, lr.Limit)
			return lr, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, fmt.Errorf("probe %s: request %d of the request-limit phase: %w", addr, i, err)
		case c.resp.Close:
			lr.Limit, lr.Signalled = i, true
			o.progress("%s: request limit: Connection: close after %d requests", addr, lr.Limit)
			return lr, nil
		}
	}
	o.progress("%s: request limit: none within %d requests", addr, o.MaxRequests)
	return lr, nil
}
