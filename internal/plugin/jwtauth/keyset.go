package jwtauth

import (
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet is an immutable list of verification keys. Sets are small (a handful of keys), so a
// linear scan finds a key faster than a map and without allocating.
type KeySet struct {
	keys []Key
	gen  uint64 // unique per set, so a result verified with a replaced set can be told apart
}

var keySetGen atomic.Uint64

// NewKeySet returns a set of keys.
func NewKeySet(keys []Key) *KeySet { return &KeySet{keys: keys, gen: keySetGen.Add(1)} }

// Len returns the number of keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// IDs returns the key ids in order ("" for a key without one).
func (s *KeySet) IDs() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.ID
	}
	return ids
}

// find returns what verifies a token with header kid and alg: one key, a
// [jwt.VerificationKeySet] when several unnamed keys qualify, or nil.
//
// A key whose ID equals kid is chosen first. When no key carries that ID (or the token has
// no kid), the keys without an ID are tried: a key configured from a PEM file has no ID, and
// the token's issuer may still name it. A key with another ID is never tried, so a token
// cannot pick a key by leaving its kid out. Only keys of the family alg needs are candidates.
func (s *KeySet) find(kid, alg string) any {
	if s == nil {
		return nil
	}
	if kid != "" {
		for _, k := range s.keys {
			if k.ID == kid && k.verifies(alg) {
				return k.pub
			}
		}
	}
	var first any
	var set []jwt.VerificationKey
	for _, k := range s.keys {
		if k.ID != "" || !k.verifies(alg) {
			continue
		}
		switch {
		case first == nil:
			first = k.pub
		case set == nil:
			set = []jwt.VerificationKey{first, k.pub}
		default:
			set = append(set, k.pub)
		}
	}
	if set != nil {
		return jwt.VerificationKeySet{Keys: set}
	}
	return first
}

// hasID reports whether a key carries id.
func (s *KeySet) hasID(id string) bool {
	if s == nil {
		return false
	}
	for _, k := range s.keys {
		if k.ID == id {
			return true
		}
	}
	return false
}
