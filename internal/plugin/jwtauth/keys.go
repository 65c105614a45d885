package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// MinRSABits is the smallest RSA modulus accepted for a verification key (NIST SP 800-131A
// retired 1024-bit RSA signatures in 2013).
const MinRSABits = 2048

// Key is one verification key: a public key (or an HMAC secret) with the algorithms it may
// verify. A key is tied to its family by type, so an RSA key can never verify an HS256
// token whose "secret" would be the RSA key's own bytes (the classic algorithm confusion).
type Key struct {
	// ID is the key id matched against a token's "kid" header; "" matches tokens without one
	// (and tokens whose kid no key carries, when no key has that kid: see [KeySet.Find]).
	ID string
	// Alg, when set (a JWK's "alg"), is the only algorithm this key verifies.
	Alg string
	// pub is []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	pub any
}

// SecretKey returns an HMAC key.
func SecretKey(id string, secret []byte) Key { return Key{ID: id, pub: secret} }

// Family is the algorithm family the key's type verifies: "HS", "RS" (RS* and PS*), "ES256",
// "ES384", "ES512" or "EdDSA".
func (k Key) Family() string { return keyFamily(k.pub) }

func keyFamily(pub any) string {
	switch p := pub.(type) {
	case []byte:
		return "HS"
	case *rsa.PublicKey:
		return "RS"
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// algFamily maps a JWS algorithm to the key family that verifies it ("" when unsupported).
func algFamily(alg string) string {
	switch alg {
	case "HS256", "HS384", "HS512":
		return "HS"
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "RS"
	case "ES256", "ES384", "ES512", "EdDSA":
		return alg
	}
	return ""
}

// verifies reports whether k may verify a token signed with alg.
func (k Key) verifies(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	return algFamily(alg) == keyFamily(k.pub)
}

// ParsePEM returns the public keys in PEM data: PUBLIC KEY (PKIX: RSA, ECDSA, Ed25519),
// RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks. Other blocks (a private key pasted by
// mistake among them) are an error, so a secret is never silently ignored. Every key gets id.
func ParsePEM(id string, data []byte) ([]Key, error) {
	var keys []Key
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		pub, err := pemPublicKey(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		if err := checkKey(pub); err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, Key{ID: id, pub: pub})
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}

// ReadPEMFile reads and parses a PEM file (see [ParsePEM]).
func ReadPEMFile(id, path string) ([]Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := ParsePEM(id, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

func pemPublicKey(block *pem.Block) (any, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("not a public key or certificate (a private key must never be given here)")
}

func checkKey(pub any) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits, at least %d required", p.N.BitLen(), MinRSABits)
		}
		return nil
	}
	if keyFamily(pub) == "" {
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// jwk is one JSON Web Key (RFC 7517) as found in a key set.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA (RFC 7518 section 6.3.1)
	N string `json:"n"`
	E string `json:"e"`
	// EC and OKP (RFC 7518 section 6.2.1, RFC 8037 section 2)
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// errSkipKey marks a JWK that is valid but not for us (an encryption key, an HMAC key or a
// type we do not verify with): it is left out of the set, not an error for the whole set.
var errSkipKey = errors.New("key skipped")

// parseJWK returns the verification key of one JWK. Symmetric ("oct") keys are skipped: a
// key set fetched over HTTP is public, and a secret published there is no secret.
func parseJWK(j jwk) (Key, error) {
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("%w: use %q", errSkipKey, j.Use)
	}
	if j.Alg != "" && algFamily(j.Alg) == "" {
		return Key{}, fmt.Errorf("%w: alg %q", errSkipKey, j.Alg)
	}
	var pub any
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil {
			return Key{}, fmt.Errorf("RSA key: %w", err)
		}
		if len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New("RSA key: bad exponent")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	case "EC":
		curve, size := curveOf(j.Crv)
		if curve == nil {
			return Key{}, fmt.Errorf("%w: EC curve %q", errSkipKey, j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil {
			return Key{}, fmt.Errorf("EC key: %w", err)
		}
		if len(x) != size || len(y) != size {
			return Key{}, fmt.Errorf("EC key: coordinates of %d and %d bytes, want %d", len(x), len(y), size)
		}
		point := append(append([]byte{4}, x...), y...)
		k, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return Key{}, fmt.Errorf("EC key: %w", err)
		}
		pub = k
	case "OKP":
		if j.Crv != "Ed25519" {
			return Key{}, fmt.Errorf("%w: OKP curve %q", errSkipKey, j.Crv)
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New("Ed25519 key: bad x")
		}
		pub = ed25519.PublicKey(x)
	default:
		return Key{}, fmt.Errorf("%w: kty %q", errSkipKey, j.Kty)
	}
	if err := checkKey(pub); err != nil {
		return Key{}, err
	}
	k := Key{ID: j.Kid, Alg: j.Alg, pub: pub}
	if j.Alg != "" && !k.verifies(j.Alg) {
		return Key{}, fmt.Errorf("alg %q does not fit a %s key", j.Alg, j.Kty)
	}
	return k, nil
}

func curveOf(crv string) (elliptic.Curve, int) {
	switch crv {
	case "P-256":
		return elliptic.P256(), 32
	case "P-384":
		return elliptic.P384(), 48
	case "P-521":
		return elliptic.P521(), 66
	}
	return nil, 0
}

func b64(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("missing member")
	}
	return base64.RawURLEncoding.DecodeString(s)
}
