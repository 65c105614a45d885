package keyauth

import (
	"regexp"

	"sluice/internal/config"
)

// Config is key-auth's config.
type Config struct {
	// Header is the request header that carries the key. Default "apikey".
	Header string `yaml:"header"`
	// Query is the query argument that carries the key when the header is absent. Default
	// "": keys are not read from the query (a key in a URL ends up in logs and caches).
	Query string `yaml:"query"`
	// Realm is the realm of the WWW-Authenticate challenge. Default "sluice".
	Realm string `yaml:"realm"`
}

// Credential is a consumer's key-auth credential.
type Credential struct {
	// Keys are the consumer's API keys (several, for rotation). At least one; each at least
	// 16 characters, unique across consumers.
	Keys []string `yaml:"keys"`
}

var reName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`) // an HTTP token

func decodeCredential(n config.Node) (any, error) {
	var c Credential
	if err := n.Decode(&c); err != nil {
		return nil, err
	}
	if len(c.Keys) == 0 {
		return nil, n.Errorf("keys", "at least one key is required")
	}
	for i, k := range c.Keys {
		if len(k) < minKeyLen {
			return nil, n.Errorf("keys", "keys[%d] is %d characters: at least %d are required", i, len(k), minKeyLen)
		}
	}
	return &c, nil
}

const minKeyLen = 16
