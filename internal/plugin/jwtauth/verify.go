package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/reason"
)

// Supported lists the JWS algorithms a verifier may allow (never "none").
var Supported = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Options configure a [Verifier].
type Options struct {
	// Algorithms is the allow-list of the token's "alg"; it must not be empty.
	Algorithms []string
	// Keys are the static keys (inline or from files); may be empty when JWKS is set.
	Keys *KeySet
	// JWKS is the remote key set, or nil.
	JWKS *JWKS
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audiences, when set, must contain one of the token's "aud" values.
	Audiences []string
	// Leeway is the clock skew allowed on exp, nbf (and iat).
	Leeway time.Duration
	// RequireExp refuses tokens without "exp".
	RequireExp bool
	// ConsumerClaim names the claim whose value identifies the consumer ("" for none).
	ConsumerClaim string
	// ForwardClaims names the claims whose values are returned in [Result.Values], in order.
	ForwardClaims []string
	// CacheSize is the number of verified tokens remembered (see [Cache]); 0: none.
	CacheSize int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Result is what a verified token says. It is immutable once returned.
type Result struct {
	// Consumer is the value of the consumer claim ("" when absent or not configured).
	Consumer string
	// Values are the forwarded claims' values, aligned with Options.ForwardClaims; ""
	// marks a claim that is absent or not safe as a header value.
	Values []string
	// Expires is the token's exp (zero when it has none).
	Expires time.Time
	// KeyGen identifies the key sets the token was verified with (see [Verifier.KeyGen]).
	KeyGen uint64
}

// Failure kinds. Each is one reason code (see docs/errors.md) and one fixed description
// (it goes into WWW-Authenticate, so it holds no quote, no backslash, and nothing from the
// token).
const (
	FailMissing     = reason.JWTMissing
	FailMalformed   = reason.JWTMalformed
	FailAlgorithm   = reason.JWTAlgorithm
	FailUnknownKey  = reason.JWTUnknownKey
	FailSignature   = reason.JWTBadSignature
	FailExpired     = reason.JWTExpired
	FailNotYetValid = reason.JWTNotYetValid
	FailIssuer      = reason.JWTWrongIssuer
	FailAudience    = reason.JWTWrongAudience
	FailClaims      = reason.JWTInvalidClaims
	FailKeysDown    = reason.JWTKeysUnavailable
)

// Descriptions and statuses of the failures.
const (
	descMissing     = "no bearer token in the request"
	descMalformed   = "the token is malformed"
	descAlgorithm   = "the token's signing algorithm is not allowed"
	descUnknownKey  = "no key verifies this token"
	descSignature   = "the token's signature is invalid"
	descExpired     = "the token has expired"
	descNotYetValid = "the token is not valid yet"
	descIssuer      = "the token's issuer is not accepted"
	descAudience    = "the token's audience is not accepted"
	descClaims      = "the token's claims are invalid"
	descKeysDown    = "the key set is not available"
	statusKeysDown  = 503
	statusBadToken  = 401
)

// Error is a verification failure: the reason code, the status to answer and a fixed
// description. Err is the library's error, for logs; it never holds the token.
type Error struct {
	Code        reason.Code
	Status      int
	Description string
	Err         error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Err.Error()
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// errMissing is the failure for an empty token.
var errMissing = &Error{Code: FailMissing, Status: statusBadToken, Description: descMissing}

// Verifier checks tokens: signature with an allowed algorithm and a key of the right type,
// then exp, nbf, iss and aud. It is safe for concurrent use.
type Verifier struct {
	o      Options
	parser *jwt.Parser
	cache  *Cache
}

// NewVerifier returns a verifier, or an error when the options cannot work.
func NewVerifier(o Options) (*Verifier, error) {
	if len(o.Algorithms) == 0 {
		return nil, errors.New("no algorithm allowed")
	}
	for _, a := range o.Algorithms {
		if algFamily(a) == "" {
			return nil, fmt.Errorf("algorithm %q is not supported (supported: %s)", a, strings.Join(Supported, ", "))
		}
	}
	if o.Keys.Len() == 0 && o.JWKS == nil {
		return nil, errors.New("no key: give keys or a JWKS URL")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(o.Algorithms), jwt.WithLeeway(o.Leeway)}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if len(o.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(o.Audiences...))
	}
	if o.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if o.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(o.Now))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Verifier{o: o, parser: jwt.NewParser(opts...), cache: NewCache(o.CacheSize, o.Leeway)}, nil
}

// Check verifies tok like [Verifier.Verify], answering from the cache of verified tokens
// when tok was verified before and is still valid. The result is shared: do not modify it.
func (v *Verifier) Check(ctx context.Context, tok []byte) (*Result, *Error) {
	if v.cache == nil {
		return v.Verify(ctx, string(tok))
	}
	now, gen := v.o.Now(), v.keyGen()
	if r := v.cache.get(tok, now, gen); r != nil {
		return r, nil
	}
	return v.verifyAndCache(ctx, string(tok), now, gen)
}

// CheckString is [Verifier.Check] for a token held as a string.
func (v *Verifier) CheckString(ctx context.Context, tok string) (*Result, *Error) {
	if v.cache == nil {
		return v.Verify(ctx, tok)
	}
	now, gen := v.o.Now(), v.keyGen()
	if r := v.cache.getString(tok, now, gen); r != nil {
		return r, nil
	}
	return v.verifyAndCache(ctx, tok, now, gen)
}

func (v *Verifier) verifyAndCache(ctx context.Context, tok string, now time.Time, gen uint64) (*Result, *Error) {
	r, e := v.Verify(ctx, tok)
	if e == nil {
		v.cache.put(tok, r, now, gen)
	}
	return r, e
}

// keyGen is the generation of the current remote key set (0 without one).
func (v *Verifier) keyGen() uint64 {
	if v.o.JWKS != nil {
		if set := v.o.JWKS.Keys(); set != nil {
			return set.gen
		}
	}
	return 0
}

// CacheLen returns the number of cached verified tokens.
func (v *Verifier) CacheLen() int { return v.cache.Len() }

// keyLookup carries one verification's key search, so the jwt library's callback can say
// why no key was found.
type keyLookup struct {
	v       *Verifier
	ctx     context.Context
	called  bool // the library asked for a key: the alg passed the allow-list
	unknown bool // no key has the token's kid (or the set never loaded)
	down    bool // the remote set never loaded and no static key fits
	gen     uint64
}

func (l *keyLookup) key(t *jwt.Token) (any, error) {
	l.called = true
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	if k := l.v.o.Keys.find(kid, alg); k != nil {
		return k, nil
	}
	j := l.v.o.JWKS
	if j == nil {
		l.unknown = true
		return nil, errNoKey
	}
	set := j.Keys()
	k := set.find(kid, alg)
	if k == nil && (set == nil || (kid != "" && !set.hasID(kid))) {
		// A kid we have never seen, or no set yet: the issuer may have just rotated.
		if j.Await(l.ctx, set != nil) {
			set = j.Keys()
			k = set.find(kid, alg)
		}
	}
	if k == nil {
		l.unknown = true
		l.down = set == nil
		return nil, errNoKey
	}
	l.gen = set.gen
	return k, nil
}

var errNoKey = errors.New("no key for the token's kid and algorithm")

// Verify checks token (the compact serialization, without "Bearer "). ctx bounds a wait
// for a JWKS refresh.
func (v *Verifier) Verify(ctx context.Context, token string) (*Result, *Error) {
	if token == "" {
		return nil, errMissing
	}
	l := keyLookup{v: v, ctx: ctx}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, l.key)
	if err != nil {
		return nil, l.classify(err)
	}
	r := &Result{KeyGen: l.gen}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		r.Expires = exp.Time
	}
	if v.o.ConsumerClaim != "" {
		r.Consumer = claimString(claims, v.o.ConsumerClaim)
	}
	if len(v.o.ForwardClaims) > 0 {
		r.Values = make([]string, len(v.o.ForwardClaims))
		for i, name := range v.o.ForwardClaims {
			r.Values[i] = claimString(claims, name)
		}
	}
	return r, nil
}

// classify turns the jwt library's error into a failure. The order matters: a token with a
// bad signature is reported as such even when it has also expired, since its claims are
// not to be believed.
func (l *keyLookup) classify(err error) *Error {
	fail := func(code reason.Code, desc string) *Error {
		return &Error{Code: code, Status: statusBadToken, Description: desc, Err: err}
	}
	switch {
	case l.down:
		return &Error{Code: FailKeysDown, Status: statusKeysDown, Description: descKeysDown, Err: err}
	case l.unknown:
		return &Error{Code: FailUnknownKey, Status: statusBadToken, Description: descUnknownKey, Err: err}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(FailMalformed, descMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The alg is unknown to the library or unspecified.
		return fail(FailAlgorithm, descAlgorithm)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if !l.called { // refused before any key was asked for: the alg is not allowed
			return fail(FailAlgorithm, descAlgorithm)
		}
		return fail(FailSignature, descSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(FailExpired, descExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(FailNotYetValid, descNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(FailIssuer, descIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(FailAudience, descAudience)
	}
	return fail(FailClaims, descClaims)
}

// claimString returns a claim's value as a header-safe string: strings as they are, numbers
// and booleans formatted, arrays of strings joined with ",", objects as JSON. A name not
// found as is is looked up as a dotted path ("realm_access.roles"). "" when absent or when
// the value holds a control character (it could split a header).
func claimString(c jwt.MapClaims, name string) string {
	val, ok := c[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = map[string]any(c)
		for part := range strings.SplitSeq(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				return ""
			}
			if cur, ok = m[part]; !ok {
				return ""
			}
		}
		val = cur
	}
	var s string
	switch x := val.(type) {
	case nil:
		return ""
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			es, isStr := e.(string)
			if !isStr {
				b, _ := json.Marshal(e)
				es = string(b)
			}
			parts = append(parts, es)
		}
		s = strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	if !headerSafe(s) {
		return ""
	}
	return s
}

// headerSafe reports whether s can be a header field value: no control character but HTAB.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
