// Package keyauth is the key-auth plugin: a request names its consumer with an API key in a
// header (or a query argument). The key is removed before the request is forwarded; the
// consumer's name goes upstream instead (X-Consumer-Name).
package keyauth

import (
	"crypto/sha256"
	"fmt"
	"strconv"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAuth, New: New, Credential: decodeCredential})
}

// Name is the plugin's name in configs.
const Name = "key-auth"

// KeyAuth is one key-auth instance.
type KeyAuth struct {
	header, query string
	challenge     string
	// keys maps the SHA-256 of each key to its consumer: the lookup's time does not depend
	// on how much of a guessed key matches a real one.
	keys             map[[sha256.Size]byte]*plugin.Consumer
	missing, invalid *reason.Error
}

// New builds a key-auth instance.
func New(b *plugin.Build) (any, error) {
	c := Config{Header: "apikey", Realm: "sluice"}
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	if c.Header == "" || !reName.MatchString(c.Header) {
		return nil, b.Errorf("header", "must be a header name, got %q", c.Header)
	}
	if c.Query != "" && !reName.MatchString(c.Query) {
		return nil, b.Errorf("query", "must be a query argument name, got %q", c.Query)
	}
	k := &KeyAuth{header: c.Header, query: c.Query,
		challenge: "Key realm=" + strconv.Quote(c.Realm),
		keys:      map[[sha256.Size]byte]*plugin.Consumer{},
		missing:   reason.New(401, reason.AuthMissing, "", fmt.Errorf("no API key in header %s", c.Header)),
		invalid:   reason.New(401, reason.AuthInvalid, "", fmt.Errorf("unknown API key")),
	}
	for _, cs := range b.Consumers() {
		cred, _ := cs.Credential(Name).(*Credential)
		if cred == nil {
			continue
		}
		for _, key := range cred.Keys {
			sum := sha256.Sum256([]byte(key))
			if other, dup := k.keys[sum]; dup && other != cs {
				return nil, b.Errorf("", "consumers %q and %q have the same key", other.Name, cs.Name)
			}
			k.keys[sum] = cs
		}
	}
	return k, nil
}

// Request identifies the consumer by its key and removes the key from what is forwarded.
func (k *KeyAuth) Request(r *plugin.Request) error {
	h := r.Header()
	var sum [sha256.Size]byte
	if v, ok := h.Get(k.header); ok {
		sum = sha256.Sum256(v)
		h.Del(k.header)
	} else if v, ok := k.queryKey(r); ok {
		sum = sha256.Sum256([]byte(v)) // no allocation: the conversion does not escape
		r.RemoveQueryParam(k.query)
	} else {
		return r.NoCredentials(k.missing, k.challenge)
	}
	c := k.keys[sum]
	if c == nil {
		r.AddResponseField("WWW-Authenticate", k.challenge)
		return k.invalid
	}
	r.SetConsumer(c)
	return nil
}

func (k *KeyAuth) queryKey(r *plugin.Request) (string, bool) {
	if k.query == "" {
		return "", false
	}
	return r.QueryParam(k.query)
}

var _ plugin.RequestFilter = (*KeyAuth)(nil)
