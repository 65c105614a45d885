package basicauth

import (
	"strings"

	"golang.org/x/crypto/bcrypt"

	"sluice/internal/config"
)

// Config is basic-auth's config.
type Config struct {
	// Realm is the realm of the WWW-Authenticate challenge. Default "sluice".
	Realm string `yaml:"realm"`
}

// Credential is a consumer's basic-auth credential.
type Credential struct {
	// Username is the user name, unique across consumers. Required; no ':'.
	Username string `yaml:"username"`
	// PasswordHash is a bcrypt hash of the password ("$2a$", "$2b$" or "$2y$"; e.g.
	// `htpasswd -nbBC 10 user pass`). Required.
	PasswordHash string `yaml:"password_hash"`
	// Password is not accepted: it is here only to say so clearly (a plain password in a
	// config file is a leak waiting to happen).
	Password string `yaml:"password"`
}

func decodeCredential(n config.Node) (any, error) {
	var c Credential
	if err := n.Decode(&c); err != nil {
		return nil, err
	}
	switch {
	case c.Password != "":
		return nil, n.Errorf("password", "plain passwords are not accepted: write password_hash, a bcrypt hash (htpasswd -nbB user pass)")
	case c.Username == "" || strings.Contains(c.Username, ":"):
		return nil, n.Errorf("username", "required, without ':'")
	case c.PasswordHash == "":
		return nil, n.Errorf("password_hash", "required: a bcrypt hash (htpasswd -nbB user pass)")
	}
	if _, err := bcrypt.Cost([]byte(c.PasswordHash)); err != nil {
		return nil, n.Errorf("password_hash", "not a bcrypt hash ($2a$, $2b$ or $2y$...): %v", err)
	}
	return &c, nil
}
