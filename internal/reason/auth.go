package reason

// Reason codes of the jwt-auth and forward-auth plugins (docs/errors.md, "Authentication").
// They live in a file of their own so the plugins' codes are added without touching the
// tables above.
const (
	JWTMissing         Code = "jwt_missing"
	JWTMalformed       Code = "jwt_malformed"
	JWTAlgorithm       Code = "jwt_algorithm_not_allowed"
	JWTUnknownKey      Code = "jwt_unknown_key"
	JWTBadSignature    Code = "jwt_bad_signature"
	JWTExpired         Code = "jwt_expired"
	JWTNotYetValid     Code = "jwt_not_yet_valid"
	JWTWrongIssuer     Code = "jwt_wrong_issuer"
	JWTWrongAudience   Code = "jwt_wrong_audience"
	JWTInvalidClaims   Code = "jwt_invalid_claims"
	JWTUnknownConsumer Code = "jwt_unknown_consumer"
	JWTKeysUnavailable Code = "jwt_keys_unavailable"

	AuthDenied          Code = "auth_denied"
	AuthUnavailable     Code = "auth_unavailable"
	AuthTimeout         Code = "auth_timeout"
	AuthUnknownConsumer Code = "auth_unknown_consumer"
)

func init() {
	for c, d := range map[Code]string{
		JWTMissing:         "the request carries no bearer token",
		JWTMalformed:       "the bearer token is not a well-formed JWT",
		JWTAlgorithm:       "the token's signing algorithm is not allowed",
		JWTUnknownKey:      "no configured key can verify the token",
		JWTBadSignature:    "the token's signature is invalid",
		JWTExpired:         "the token has expired",
		JWTNotYetValid:     "the token is not valid yet",
		JWTWrongIssuer:     "the token's issuer is not accepted",
		JWTWrongAudience:   "the token's audience is not accepted",
		JWTInvalidClaims:   "the token's claims are invalid or a required one is missing",
		JWTUnknownConsumer: "the token names no consumer allowed here",
		JWTKeysUnavailable: "the keys to verify tokens could not be fetched",

		AuthDenied:          "the auth service denied the request",
		AuthUnavailable:     "the auth service is unavailable",
		AuthTimeout:         "the auth service did not answer in time",
		AuthUnknownConsumer: "the auth service named no consumer allowed here",
	} {
		descriptions[c] = d
	}
}
