// Package jwtauth is the jwt-auth plugin: a request carries a JSON Web Token (RFC 7519), and
// the plugin verifies it, identifies the consumer from one of its claims, and may forward
// chosen claims to the upstream as headers. docs/plugins.md#jwt-auth is the user's side.
//
// The parts, each usable on its own:
//
//   - keys.go, keyset.go: verification keys (HMAC secrets, PEM public keys, JWKs). A key's
//     type fixes the algorithm family it verifies, so an RSA key can never verify an HS256
//     token made with the RSA key's public bytes as the secret (algorithm confusion).
//   - jwks.go: a key set fetched from a URL and refreshed in the background (max-age within
//     bounds, a rate-limited refresh for unknown kids, the last good set kept on failure).
//   - verify.go: the [Verifier] over github.com/golang-jwt/jwt/v5: allow-listed algorithms
//     (never "none"), exp/nbf with a clock-skew leeway, iss, aud; each failure one reason
//     code and one fixed RFC 6750 description.
//   - cache.go: a bounded cache of verified tokens, keyed by their bytes, valid until exp and
//     only while the key set that verified them is current (docs/design.md has the numbers).
//   - plugin.go, token.go, config.go: the plugin on the plugin model (internal/plugin).
//
// The token never reaches a log: refusals log the reason and the library's message, which
// does not quote the token.
package jwtauth
