package jwtauth

// A JWKS keeps the key set published at a URL fresh, in the background, for verifiers that
// must never wait on it in the common case.
//
// Schedule. One goroutine ([JWKS.Run]) fetches the set at start and then again after the
// response's Cache-Control max-age, clamped to [MinRefresh, MaxRefresh] (RefreshInterval
// when the response gives none; MinRefresh for no-cache/no-store). It sends the last ETag
// as If-None-Match, so an unchanged set costs a 304.
//
// Failures. A failed fetch (refused, timed out, a non-200 status, a body over MaxBytes, bad
// JSON, a set with no usable key) keeps the last good set: a JWKS outage must not turn into
// an authentication outage. It is logged and counted, and retried after 1s, 2s, 4s, ...
// capped at MinRefresh, until one succeeds.
//
// Unknown kid. A token naming a kid that the set lacks may be signed with a key the issuer
// just published, so the verifier asks for a refresh ([JWKS.Await]) and waits for it, bounded
// by the request's context and Timeout. Such refreshes are rate limited to one per MinRefresh:
// a flood of tokens with made-up kids costs the JWKS server at most one fetch per MinRefresh,
// and while a fetch runs every waiter waits for that one fetch (no fetch per request).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [JWKSOptions].
const (
	DefaultJWKSTimeout         = 5 * time.Second
	DefaultJWKSRefreshInterval = 10 * time.Minute
	DefaultJWKSMinRefresh      = 30 * time.Second
	DefaultJWKSMaxRefresh      = 24 * time.Hour
	DefaultJWKSMaxBytes        = 1 << 20
	firstRetry                 = time.Second
)

// JWKSOptions configure a [JWKS]. Zero fields take the Default values above.
type JWKSOptions struct {
	URL string
	// Client makes the fetches; nil: a client of its own with keep-alive.
	Client *http.Client
	// Timeout bounds one fetch, and how long a request waits for a refresh.
	Timeout time.Duration
	// RefreshInterval is the time between fetches when the response has no max-age.
	RefreshInterval time.Duration
	// MinRefresh is the floor of max-age, the cap of the retry backoff after failures and
	// the least time between two refreshes asked for by unknown kids.
	MinRefresh time.Duration
	// MaxRefresh is the ceiling of max-age.
	MaxRefresh time.Duration
	// MaxBytes bounds the response body.
	MaxBytes int64
	// Logger gets a warning per failed fetch (never a token: the JWKS never sees one).
	Logger *slog.Logger
}

// JWKSStats counts what a [JWKS] did. Read with [JWKS.Stats].
type JWKSStats struct {
	Fetches           uint64 // fetches that ended (any outcome)
	Failures          uint64 // fetches that failed; the last good set was kept
	NotModified       uint64 // fetches answered 304
	UnknownKIDFetches uint64 // refreshes asked for by a token with an unknown kid
	UnknownKIDLimited uint64 // unknown-kid refreshes refused by the rate limit
	Keys              int    // keys in the current set
	LastError         string // the last failure ("" after a success)
	LastSuccess       time.Time
}

// JWKS is a key set fetched from a URL and refreshed in the background. Find and Await are
// safe for concurrent use; Run must be running for the set to load.
type JWKS struct {
	o   JWKSOptions
	set atomic.Pointer[KeySet]

	kick chan struct{}

	mu        sync.Mutex
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
	requested chan struct{} // an asked-for fetch not yet started; closed when it ends
	lastAsk   time.Time     // last unknown-kid refresh asked for
	etag      string        // of the current set (loop goroutine only, under mu for Stats)
	stats     JWKSStats
}

// NewJWKS returns a JWKS for o.URL; nothing is fetched before [JWKS.Run].
func NewJWKS(o JWKSOptions) *JWKS {
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
			ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	setDefault(&o.Timeout, DefaultJWKSTimeout)
	setDefault(&o.RefreshInterval, DefaultJWKSRefreshInterval)
	setDefault(&o.MinRefresh, DefaultJWKSMinRefresh)
	setDefault(&o.MaxRefresh, DefaultJWKSMaxRefresh)
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultJWKSMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &JWKS{o: o, kick: make(chan struct{}, 1)}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Keys returns the current set: nil until the first fetch succeeds.
func (j *JWKS) Keys() *KeySet { return j.set.Load() }

// Stats returns a snapshot of the counters.
func (j *JWKS) Stats() JWKSStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Keys = j.set.Load().Len()
	return s
}

// Run fetches the set now and refreshes it until ctx is done.
func (j *JWKS) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-j.kick:
		}
		next, err := j.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			next = min(firstRetry<<min(failures-1, 20), j.o.MinRefresh)
			j.o.Logger.Warn("jwks fetch failed; keeping the last good key set",
				"url", j.o.URL, "error", err, "failures", failures, "keys", j.set.Load().Len(), "retry_in", next)
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// fetch runs one fetch: it publishes a new set on success and wakes the waiters either way.
// It returns the delay until the next scheduled fetch.
func (j *JWKS) fetch(ctx context.Context) (time.Duration, error) {
	j.mu.Lock()
	done := j.requested
	j.requested = nil
	select { // this fetch serves the ask that kicked, if any: drop the kick
	case <-j.kick:
	default:
	}
	if done == nil {
		done = make(chan struct{})
	}
	j.inflight = done
	etag := j.etag
	j.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, j.o.Timeout)
	set, newTag, next, err := j.get(ctx, etag)
	cancel()

	j.mu.Lock()
	j.stats.Fetches++
	switch {
	case err != nil:
		j.stats.Failures++
		j.stats.LastError = err.Error()
	case set == nil: // 304: the set we have is current
		j.stats.NotModified++
		j.stats.LastError = ""
		j.stats.LastSuccess = time.Now()
	default:
		j.set.Store(set)
		j.etag = newTag
		j.stats.LastError = ""
		j.stats.LastSuccess = time.Now()
	}
	j.inflight = nil
	j.mu.Unlock()
	close(done)
	return next, err
}

// get fetches and parses the set. A nil set with a nil error means 304 Not Modified.
func (j *JWKS) get(ctx context.Context, etag string) (*KeySet, string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.o.URL, nil)
	if err != nil {
		return nil, "", 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if etag != "" && j.set.Load() != nil {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := j.o.Client.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	next := j.nextRefresh(resp.Header.Values("Cache-Control"))
	if resp.StatusCode == http.StatusNotModified && etag != "" {
		return nil, "", next, nil
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, "", 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, j.o.MaxBytes+1))
	if err != nil {
		return nil, "", 0, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > j.o.MaxBytes {
		return nil, "", 0, fmt.Errorf("body larger than %d bytes", j.o.MaxBytes)
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return nil, "", 0, err
	}
	return set, resp.Header.Get("ETag"), next, nil
}

// nextRefresh is the delay the Cache-Control header values ask for, within the bounds.
func (j *JWKS) nextRefresh(cc []string) time.Duration {
	for _, v := range cc {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "no-cache" || d == "no-store" {
				return j.o.MinRefresh
			}
			if s, ok := strings.CutPrefix(d, "max-age="); ok {
				n, err := strconv.ParseInt(strings.Trim(s, `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				age := time.Duration(min(n, int64(j.o.MaxRefresh/time.Second)+1)) * time.Second
				return min(max(age, j.o.MinRefresh), j.o.MaxRefresh)
			}
		}
	}
	return j.o.RefreshInterval
}

// ParseJWKS parses a JWK Set document (RFC 7517 section 5). Keys not meant for signature
// verification are left out; a set left with no key is an error.
func ParseJWKS(body []byte) (*KeySet, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	var keys []Key
	var errs []error
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if errors.Is(err, errSkipKey) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d] (kid %q): %w", i, raw.Kid, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable signature key in the set (%d keys): %w", len(doc.Keys), errors.Join(errs...))
	}
	return NewKeySet(keys), nil
}

// Await asks for a refresh (when the rate limit allows one) and waits for it to end, or for
// the fetch that is already running, bounded by ctx and the fetch timeout. It returns false
// when no fetch was waited for. unknownKID says why it is asked (for the counters): a kid
// missing from the set, or no set loaded yet.
func (j *JWKS) Await(ctx context.Context, unknownKID bool) bool {
	j.mu.Lock()
	ch := j.inflight
	if ch == nil {
		ch = j.requested
	}
	if ch == nil {
		now := time.Now()
		if !j.lastAsk.IsZero() && now.Sub(j.lastAsk) < j.o.MinRefresh {
			if unknownKID {
				j.stats.UnknownKIDLimited++
			}
			j.mu.Unlock()
			return false
		}
		j.lastAsk = now
		if unknownKID {
			j.stats.UnknownKIDFetches++
		}
		ch = make(chan struct{})
		j.requested = ch
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	j.mu.Unlock()
	t := time.NewTimer(j.o.Timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}
