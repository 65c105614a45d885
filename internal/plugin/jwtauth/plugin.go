package jwtauth

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"sluice/internal/config"
	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAuth, New: New, Credential: decodeCredential})
}

// Name is the plugin's name in configs.
const Name = "jwt-auth"

// Credential is a consumer's jwt-auth credential: the value its tokens carry in the
// plugin's consumer_claim.
type Credential struct {
	// ClaimValue is the consumer claim's value in this consumer's tokens (its "sub", or
	// its client id when consumer_claim names that claim). Required, unique.
	ClaimValue string `yaml:"claim_value"`
}

func decodeCredential(n config.Node) (any, error) {
	var c Credential
	if err := n.Decode(&c); err != nil {
		return nil, err
	}
	if c.ClaimValue == "" {
		return nil, n.Errorf("claim_value", "required")
	}
	return &c, nil
}

// JWTAuth is one jwt-auth instance.
type JWTAuth struct {
	v    *Verifier
	jwks *JWKS
	log  *slog.Logger

	header, cookie, query string
	bearer                bool // the header value must use the Bearer scheme (Authorization)
	remove                bool
	forward               []ForwardClaim
	consumers             map[string]*plugin.Consumer
	requireConsumer       bool

	missing     *reason.Error
	challenge   string                 // for a request without a token
	challenges  map[reason.Code]string // for a bad token, by code
	noConsumer  *reason.Error
	noConsumerC string

	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// New builds a jwt-auth instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	cc, ps := c.compile()
	var errs []error
	for _, p := range ps {
		errs = append(errs, b.Errorf(p.Field, "%s", p.Msg))
	}
	consumers := map[string]*plugin.Consumer{}
	for _, cs := range b.Consumers() {
		cred, _ := cs.Credential(Name).(*Credential)
		if cred == nil {
			continue
		}
		if other := consumers[cred.ClaimValue]; other != nil {
			errs = append(errs, b.Errorf("", "consumers %q and %q have the same jwt-auth claim_value %q", other.Name, cs.Name, cred.ClaimValue))
			continue
		}
		consumers[cred.ClaimValue] = cs
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	k := &JWTAuth{log: b.Log(), header: cc.Token.Header, cookie: cc.Token.Cookie, query: cc.Token.Query,
		remove: cc.RemoveToken, forward: cc.ForwardClaims, consumers: consumers,
		requireConsumer: cc.RequireConsumer}
	if k.header == "" && k.cookie == "" && k.query == "" {
		k.header = DefaultHeader
	}
	k.bearer = strings.EqualFold(k.header, DefaultHeader) // header names are ASCII
	opts := Options{Algorithms: cc.Algorithms, Keys: NewKeySet(cc.keys), Issuer: cc.Issuer,
		Audiences: cc.Audiences, Leeway: cc.skew, RequireExp: cc.requireExp,
		ConsumerClaim: cc.ConsumerClaim, CacheSize: cc.cacheSize}
	for _, fc := range cc.ForwardClaims {
		opts.ForwardClaims = append(opts.ForwardClaims, fc.Claim)
	}
	if j := cc.JWKS; j != nil {
		k.jwks = NewJWKS(JWKSOptions{URL: j.URL, Timeout: j.Timeout.D(), RefreshInterval: j.RefreshInterval.D(),
			MinRefresh: j.MinRefresh.D(), MaxRefresh: j.MaxRefresh.D(), MaxBytes: j.MaxBytes,
			Logger: b.Log().With("jwks", j.URL)})
		opts.JWKS = k.jwks
	}
	v, err := NewVerifier(opts)
	if err != nil {
		return nil, b.Errorf("", "%v", err)
	}
	k.v = v
	k.prepareAnswers(cc.Realm)
	if k.jwks != nil {
		ctx, cancel := context.WithCancel(b.Context())
		k.stop, k.done = cancel, make(chan struct{})
		go func() { defer close(k.done); k.jwks.Run(ctx) }()
	}
	return k, nil
}

// challenges prepares every answer's WWW-Authenticate value (RFC 6750 section 3) and error.
func (k *JWTAuth) prepareAnswers(realm string) {
	base := "Bearer realm=" + strconv.Quote(realm)
	k.challenge = base
	k.missing = reason.New(401, reason.JWTMissing, "", errors.New(descMissing))
	k.challenges = map[reason.Code]string{}
	for code, desc := range map[reason.Code]string{
		FailMalformed: descMalformed, FailAlgorithm: descAlgorithm, FailUnknownKey: descUnknownKey,
		FailSignature: descSignature, FailExpired: descExpired, FailNotYetValid: descNotYetValid,
		FailIssuer: descIssuer, FailAudience: descAudience, FailClaims: descClaims,
	} {
		k.challenges[code] = base + `, error="invalid_token", error_description="` + desc + `"`
	}
	k.noConsumer = reason.New(403, reason.JWTUnknownConsumer, "", errors.New("the token's consumer claim matches no consumer"))
	k.noConsumerC = base + `, error="insufficient_scope", error_description="the token names no consumer allowed here"`
}

// Request verifies the request's token, identifies its consumer, and forwards its claims.
func (k *JWTAuth) Request(r *plugin.Request) error {
	h := r.Header()
	// A client must not choose the values of the forwarded claims: drop its own first.
	for i := range k.forward {
		h.Del(k.forward[i].Header)
	}
	var (
		res *Result
		e   *Error
	)
	switch {
	case k.header != "":
		v, ok := h.Get(k.header)
		if ok {
			v, ok = bearerToken(v, k.bearer)
		}
		if !ok {
			return r.NoCredentials(k.missing, k.challenge)
		}
		res, e = k.v.Check(r.Context(), v)
		if e == nil && k.remove {
			h.Del(k.header)
		}
	case k.cookie != "":
		v, ok := cookieValue(h, k.cookie)
		if !ok {
			return r.NoCredentials(k.missing, k.challenge)
		}
		res, e = k.v.Check(r.Context(), v)
		if e == nil && k.remove {
			removeCookie(h, k.cookie)
		}
	default:
		v, ok := r.QueryParam(k.query)
		if !ok || v == "" {
			return r.NoCredentials(k.missing, k.challenge)
		}
		res, e = k.v.CheckString(r.Context(), v)
		if e == nil && k.remove {
			r.RemoveQueryParam(k.query)
		}
	}
	if e != nil {
		return k.refuse(r, e)
	}
	if res.Consumer != "" {
		if c := k.consumers[res.Consumer]; c != nil {
			r.SetConsumer(c)
		} else if k.requireConsumer {
			r.AddResponseField("WWW-Authenticate", k.noConsumerC)
			return k.noConsumer
		}
	} else if k.requireConsumer {
		r.AddResponseField("WWW-Authenticate", k.noConsumerC)
		return k.noConsumer
	}
	for i := range k.forward {
		if v := res.Values[i]; v != "" {
			h.Add(k.forward[i].Header, v)
		}
	}
	return nil
}

// refuse answers a bad token: 401 with its challenge, or 503 when the keys could not be
// fetched. The log line has the reason and the library's message, never the token.
func (k *JWTAuth) refuse(r *plugin.Request, e *Error) error {
	if k.log.Enabled(r.Context(), slog.LevelDebug) {
		k.log.LogAttrs(r.Context(), slog.LevelDebug, "token refused",
			slog.String("route", r.RouteID()), slog.String("reason", string(e.Code)), slog.String("error", e.Error()))
	}
	if c, ok := k.challenges[e.Code]; ok {
		r.AddResponseField("WWW-Authenticate", c)
	}
	cause := e.Err
	if cause == nil {
		cause = errors.New(e.Description)
	}
	return reason.New(e.Status, e.Code, "", cause)
}

// Close stops the JWKS refresher and waits for it.
func (k *JWTAuth) Close() error {
	k.once.Do(func() {
		if k.stop != nil {
			k.stop()
			<-k.done
		}
	})
	return nil
}

// JWKS returns the instance's remote key set, nil without one (for tests and metrics).
func (k *JWTAuth) JWKS() *JWKS { return k.jwks }

// PluginStats reports the JWKS's fetches, unknown-kid refreshes and keys (nothing without
// a JWKS).
func (k *JWTAuth) PluginStats(emit func(plugin.Stat)) {
	if k.jwks == nil {
		return
	}
	s := k.jwks.Stats()
	ok := s.Fetches - s.Failures - s.NotModified
	emit(plugin.Stat{Key: "jwks_fetches", Label: "success", Value: float64(ok)})
	emit(plugin.Stat{Key: "jwks_fetches", Label: "not_modified", Value: float64(s.NotModified)})
	emit(plugin.Stat{Key: "jwks_fetches", Label: "failure", Value: float64(s.Failures)})
	emit(plugin.Stat{Key: "jwks_unknown_kid", Label: "fetched", Value: float64(s.UnknownKIDFetches)})
	emit(plugin.Stat{Key: "jwks_unknown_kid", Label: "rate_limited", Value: float64(s.UnknownKIDLimited)})
	emit(plugin.Stat{Key: "jwks_keys", Value: float64(s.Keys)})
}

var (
	_ plugin.RequestFilter = (*JWTAuth)(nil)
	_ plugin.Closer        = (*JWTAuth)(nil)
	_ plugin.StatsReporter = (*JWTAuth)(nil)
)
