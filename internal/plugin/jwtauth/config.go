package jwtauth

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"sluice/internal/config"
	"sluice/internal/plugin"
)

// Defaults of [Config], in one place.
const (
	DefaultClockSkew     = config.Duration(30 * time.Second)
	DefaultConsumerClaim = "sub"
	DefaultCacheSize     = 4096
	DefaultRealm         = "sluice"
	DefaultHeader        = "Authorization"
	// MaxClockSkew bounds clock_skew: a larger allowance would keep expired tokens alive.
	MaxClockSkew = config.Duration(10 * time.Minute)
	// MinSecretBytes is the shortest HMAC secret accepted: RFC 7518 section 3.2 requires a
	// key at least as long as the hash output (32 bytes for HS256).
	MinSecretBytes = 32
)

// Config is the jwt-auth plugin's config (docs/plugins.md#jwt-auth).
type Config struct {
	// Algorithms is the allow-list of the token's "alg" (HS256, HS384, HS512, RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA; never "none"). Omitted: those
	// of the configured keys (HS256 for a secret, RS256 for an RSA key, ES256 for a P-256
	// key, EdDSA for an Ed25519 key; RS256, ES256 and EdDSA for a JWKS).
	Algorithms []string `yaml:"algorithms"`
	// Keys are static verification keys. Omitted: none (then jwks is required).
	Keys []KeyConfig `yaml:"keys"`
	// JWKS is a key set fetched from a URL and refreshed in the background. Omitted: none.
	JWKS *JWKSConfig `yaml:"jwks"`
	// Issuer, when set, must equal the token's "iss". Omitted: not checked.
	Issuer string `yaml:"issuer"`
	// Audiences, when set, must include one of the token's "aud" values. Omitted: not checked.
	Audiences []string `yaml:"audiences"`
	// ClockSkew is the allowance on exp and nbf for clocks that disagree. Default 30s; 0
	// means none; at most 10m.
	ClockSkew *config.Duration `yaml:"clock_skew"`
	// RequireExp refuses tokens without "exp". Default true.
	RequireExp *bool `yaml:"require_exp"`
	// Token says where the token is. Default: the Authorization header, "Bearer" scheme.
	Token TokenConfig `yaml:"token"`
	// RemoveToken removes the token from the request before it is forwarded (the header,
	// the cookie or the query argument). Default false: the upstream gets it.
	RemoveToken bool `yaml:"remove_token"`
	// ConsumerClaim names the claim whose value identifies the consumer (matched against
	// consumers' credentials.jwt-auth.claim_value). A dotted name ("client.id") walks into
	// objects when no claim has that exact name. Default "sub".
	ConsumerClaim string `yaml:"consumer_claim"`
	// RequireConsumer refuses (403 jwt_unknown_consumer) a valid token whose consumer
	// claim matches no consumer. Default false: the request goes on with no consumer.
	RequireConsumer bool `yaml:"require_consumer"`
	// ForwardClaims are claims sent to the upstream as request headers. The client's own
	// fields of those names are always removed first, so a client cannot forge them.
	// Omitted: none.
	ForwardClaims []ForwardClaim `yaml:"forward_claims"`
	// CacheSize is how many verified tokens are remembered until they expire, so a client
	// that sends the same token again is not verified again (docs/design.md). Default
	// 4096; 0 turns the cache off.
	CacheSize *int `yaml:"cache_size"`
	// Realm is the realm in WWW-Authenticate challenges. Default "sluice".
	Realm string `yaml:"realm"`
}

// KeyConfig is one static key: exactly one of secret, public_key, public_key_file.
type KeyConfig struct {
	// ID is matched against a token's "kid". Omitted: the key is tried for any token whose
	// kid no other key has.
	ID string `yaml:"id"`
	// Secret is an HMAC secret (HS256/384/512), at least 32 bytes.
	Secret string `yaml:"secret"`
	// PublicKey is a PEM public key or certificate (RSA, ECDSA, Ed25519), inline.
	PublicKey string `yaml:"public_key"`
	// PublicKeyFile is the path of a PEM file of public keys or certificates, read when the
	// config is loaded (and reloaded).
	PublicKeyFile string `yaml:"public_key_file"`
}

// JWKSConfig configures the remote key set (see [JWKS] for the refresh rules).
type JWKSConfig struct {
	// URL is where the JWK Set is served (http or https). Required.
	URL string `yaml:"url"`
	// Timeout bounds one fetch, and how long a request waits for a refresh. Default 5s.
	Timeout config.Duration `yaml:"timeout"`
	// RefreshInterval is the time between fetches when the response has no Cache-Control
	// max-age. Default 10m.
	RefreshInterval config.Duration `yaml:"refresh_interval"`
	// MinRefresh is the floor of max-age, the cap of the retry backoff after a failed fetch,
	// and the least time between two refreshes asked for by tokens with an unknown kid.
	// Default 30s.
	MinRefresh config.Duration `yaml:"min_refresh"`
	// MaxRefresh is the ceiling of max-age. Default 24h.
	MaxRefresh config.Duration `yaml:"max_refresh"`
	// MaxBytes bounds the key set document. Default 1048576 (1 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
}

// TokenConfig says where the token is: at most one of header, cookie, query.
type TokenConfig struct {
	// Header is a request header holding the token. For Authorization (the default) the
	// value must use the "Bearer" scheme; another header may hold the token bare or after
	// "Bearer ".
	Header string `yaml:"header"`
	// Cookie is the name of a cookie holding the token.
	Cookie string `yaml:"cookie"`
	// Query is the name of a query argument holding the token (raw, not percent-decoded:
	// JWTs need no encoding).
	Query string `yaml:"query"`
}

// ForwardClaim sends a claim's value to the upstream as a header.
type ForwardClaim struct {
	// Claim is the claim's name (a dotted name walks into objects). Required.
	Claim string `yaml:"claim"`
	// Header is the request header to set. Required.
	Header string `yaml:"header"`
}

// Problem is one config problem: the field (a path below the plugin's config) and what is
// wrong with it.
type Problem struct{ Field, Msg string }

// problems collects Problems.
type problems []Problem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{field, fmt.Sprintf(format, args...)})
}

// compiled is a checked Config with its keys read and every default applied.
type compiled struct {
	Config
	keys       []Key
	skew       time.Duration
	requireExp bool
	cacheSize  int
}

// compile checks c, applies its defaults and reads its keys. It returns every problem.
func (c Config) compile() (*compiled, []Problem) {
	var ps problems
	out := &compiled{Config: c, skew: DefaultClockSkew.D(), requireExp: true, cacheSize: DefaultCacheSize}
	if c.ClockSkew != nil {
		out.skew = c.ClockSkew.D()
		if *c.ClockSkew > MaxClockSkew {
			ps.add("clock_skew", "%v is more than %v: expired tokens would be accepted that long", c.ClockSkew.D(), MaxClockSkew.D())
		}
	}
	if c.RequireExp != nil {
		out.requireExp = *c.RequireExp
	}
	if c.CacheSize != nil {
		out.cacheSize = *c.CacheSize
		if out.cacheSize < 0 {
			ps.add("cache_size", "must not be negative (0 turns the cache off)")
		}
	}
	if out.ConsumerClaim == "" {
		out.ConsumerClaim = DefaultConsumerClaim
	}
	if out.Realm == "" {
		out.Realm = DefaultRealm
	} else if strings.ContainsAny(out.Realm, "\"\\\r\n") {
		ps.add("realm", "must not contain quotes, backslashes or line breaks")
	}
	out.keys = c.readKeys(&ps)
	if len(c.Keys) == 0 && c.JWKS == nil {
		ps.add("", "no key: give keys or jwks.url")
	}
	if c.JWKS != nil {
		c.JWKS.check(&ps)
	}
	out.Algorithms = c.algorithms(out.keys, &ps)
	c.Token.check(&ps)
	for i, fc := range c.ForwardClaims {
		f := fmt.Sprintf("forward_claims[%d]", i)
		if fc.Claim == "" {
			ps.add(f+".claim", "required")
		}
		if !plugin.IsToken(fc.Header) {
			ps.add(f+".header", "%q is not a valid header name", fc.Header)
		} else if reservedHeader(fc.Header) {
			ps.add(f+".header", "%q cannot be set from a claim", fc.Header)
		}
	}
	return out, ps
}

func (c Config) readKeys(ps *problems) []Key {
	var keys []Key
	for i, kc := range c.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		n := 0
		for _, s := range []string{kc.Secret, kc.PublicKey, kc.PublicKeyFile} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			ps.add(f, "give exactly one of secret, public_key, public_key_file")
			continue
		}
		switch {
		case kc.Secret != "":
			if len(kc.Secret) < MinSecretBytes {
				ps.add(f+".secret", "%d bytes is too short: an HMAC secret needs at least %d (RFC 7518 section 3.2)", len(kc.Secret), MinSecretBytes)
				continue
			}
			keys = append(keys, SecretKey(kc.ID, []byte(kc.Secret)))
		case kc.PublicKey != "":
			k, err := ParsePEM(kc.ID, []byte(kc.PublicKey))
			if err != nil {
				ps.add(f+".public_key", "%v", err)
				continue
			}
			keys = append(keys, k...)
		default:
			data, err := os.ReadFile(kc.PublicKeyFile)
			if err != nil {
				ps.add(f+".public_key_file", "%v", err)
				continue
			}
			k, err := ParsePEM(kc.ID, data)
			if err != nil {
				ps.add(f+".public_key_file", "%s: %v", kc.PublicKeyFile, err)
				continue
			}
			keys = append(keys, k...)
		}
	}
	return keys
}

// algorithms returns the allow-list: the configured one, checked, or the keys' own.
func (c Config) algorithms(keys []Key, ps *problems) []string {
	if len(c.Algorithms) > 0 {
		for i, a := range c.Algorithms {
			if algFamily(a) == "" {
				ps.add(fmt.Sprintf("algorithms[%d]", i), "%q is not supported (supported: %s)", a, strings.Join(Supported, ", "))
			}
		}
		return c.Algorithms
	}
	var out []string
	add := func(a string) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, k := range keys {
		switch f := k.Family(); f {
		case "HS":
			add("HS256")
		case "RS":
			add("RS256")
		default:
			add(f)
		}
	}
	if c.JWKS != nil {
		add("RS256")
		add("ES256")
		add("EdDSA")
	}
	return out
}

func (j *JWKSConfig) check(ps *problems) {
	u, err := url.Parse(j.URL)
	switch {
	case j.URL == "":
		ps.add("jwks.url", "required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		ps.add("jwks.url", "want an http:// or https:// URL")
	}
	if j.MinRefresh > 0 && j.MaxRefresh > 0 && j.MinRefresh > j.MaxRefresh {
		ps.add("jwks.min_refresh", "%v is more than max_refresh %v", j.MinRefresh.D(), j.MaxRefresh.D())
	}
	if j.MaxBytes < 0 {
		ps.add("jwks.max_bytes", "must not be negative")
	}
}

func (t TokenConfig) check(ps *problems) {
	n := 0
	for _, s := range []string{t.Header, t.Cookie, t.Query} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		ps.add("token", "give at most one of header, cookie, query")
	}
	if t.Header != "" && !plugin.IsToken(t.Header) {
		ps.add("token.header", "%q is not a valid header name", t.Header)
	}
}

// reservedHeader reports names a claim must never set: framing and routing fields, and the
// gateway's own X-Consumer-Name.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
		"trailer", "upgrade", "proxy-connection", "x-consumer-name", "cookie", "authorization":
		return true
	}
	return false
}
