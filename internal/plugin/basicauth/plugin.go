// Package basicauth is the basic-auth plugin: HTTP Basic authentication (RFC 7617) against
// the consumers' bcrypt password hashes. The Authorization field is removed before the
// request is forwarded; the consumer's name goes upstream instead (X-Consumer-Name).
//
// bcrypt is slow on purpose (tens of milliseconds at cost 10), too slow to run on every
// request of a busy client. A successful check is remembered by the SHA-256 of the
// Authorization value (a bounded cache, emptied when full), so a client that keeps sending
// the same right credentials costs one hash; wrong credentials always pay for bcrypt, and an
// unknown user pays for a comparison against a dummy hash, so that timing does not tell
// which user names exist: the dummy hash has the highest cost among the consumers' hashes, so
// an unknown name costs what a known one does (a fixed cost 10 made unknown names slower than
// known ones whose hashes are cheaper).
package basicauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAuth, New: New, Credential: decodeCredential})
}

// Name is the plugin's name in configs.
const Name = "basic-auth"

// maxCached bounds the cache of verified Authorization values.
const maxCached = 4096

// dummyHashes holds, per bcrypt cost, the hash compared against for an unknown user, made
// once per process when first needed.
var dummyHashes sync.Map // int -> func() []byte

func dummyHash(cost int) []byte {
	f, _ := dummyHashes.LoadOrStore(cost, sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("no such user"), cost)
		return h
	}))
	return f.(func() []byte)()
}

type user struct {
	consumer *plugin.Consumer
	hash     []byte
}

// BasicAuth is one basic-auth instance.
type BasicAuth struct {
	users            map[string]user
	dummyCost        int // the highest cost of the users' hashes
	challenge        string
	missing, invalid *reason.Error

	mu       sync.RWMutex
	verified map[[sha256.Size]byte]*plugin.Consumer
}

// New builds a basic-auth instance.
func New(b *plugin.Build) (any, error) {
	c := Config{Realm: "sluice"}
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	p := &BasicAuth{users: map[string]user{},
		challenge: "Basic realm=" + strconv.Quote(c.Realm) + `, charset="UTF-8"`,
		missing:   reason.New(401, reason.AuthMissing, "", errors.New("no Basic credentials")),
		invalid:   reason.New(401, reason.AuthInvalid, "", errors.New("wrong user name or password")),
		verified:  map[[sha256.Size]byte]*plugin.Consumer{},
	}
	for _, cs := range b.Consumers() {
		cred, _ := cs.Credential(Name).(*Credential)
		if cred == nil {
			continue
		}
		if other, dup := p.users[cred.Username]; dup {
			return nil, b.Errorf("", "consumers %q and %q have the same basic-auth username %q", other.consumer.Name, cs.Name, cred.Username)
		}
		p.users[cred.Username] = user{consumer: cs, hash: []byte(cred.PasswordHash)}
	}
	p.dummyCost = dummyCost(p.users)
	return p, nil
}

// dummyCost is the cost of the hash an unknown user is checked against: the highest of the
// users' (bcrypt's default when there are none).
func dummyCost(users map[string]user) int {
	c := 0
	for _, u := range users {
		if cost, err := bcrypt.Cost(u.hash); err == nil {
			c = max(c, cost)
		}
	}
	if c == 0 {
		c = bcrypt.DefaultCost
	}
	return c
}

// Request identifies the consumer from the Authorization field.
func (p *BasicAuth) Request(r *plugin.Request) error {
	h := r.Header()
	v, ok := h.Get("Authorization")
	if !ok || len(v) < 6 || !bytes.EqualFold(v[:6], []byte("Basic ")) {
		return r.NoCredentials(p.missing, p.challenge)
	}
	sum := sha256.Sum256(v)
	p.mu.RLock()
	c := p.verified[sum]
	p.mu.RUnlock()
	if c == nil {
		c = p.verify(bytes.TrimLeft(v[6:], " "))
		if c == nil {
			h.Del("Authorization")
			r.AddResponseField("WWW-Authenticate", p.challenge)
			return p.invalid
		}
		p.remember(sum, c)
	}
	h.Del("Authorization")
	r.SetConsumer(c)
	return nil
}

// verify checks base64 "user:password" against the users' hashes.
func (p *BasicAuth) verify(b64 []byte) *plugin.Consumer {
	var buf [512]byte
	if base64.StdEncoding.DecodedLen(len(b64)) > len(buf) {
		return nil
	}
	n, err := base64.StdEncoding.Decode(buf[:], b64)
	if err != nil {
		return nil
	}
	name, pass, ok := bytes.Cut(buf[:n], []byte(":"))
	if !ok {
		return nil
	}
	u, known := p.users[string(name)]
	hash := u.hash
	if !known {
		hash = dummyHash(p.dummyCost)
	}
	if bcrypt.CompareHashAndPassword(hash, pass) != nil || !known {
		return nil
	}
	return u.consumer
}

func (p *BasicAuth) remember(sum [sha256.Size]byte, c *plugin.Consumer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.verified) >= maxCached {
		clear(p.verified)
	}
	p.verified[sum] = c
}

var _ plugin.RequestFilter = (*BasicAuth)(nil)
