package reason

// Reason codes of the plugins (internal/plugin/...). Each plugin group keeps its codes here
// or in a file of its own, registered in descriptions by init, so that plugin branches do
// not edit the same lines. docs/errors.md lists each with advice.
const (
	// AuthMissing: the route requires authentication and the request has no credentials
	// (401, with WWW-Authenticate).
	AuthMissing Code = "auth_credentials_missing"
	// AuthInvalid: the credentials are unknown, malformed or wrong (401).
	AuthInvalid Code = "auth_credentials_invalid"
	// ConsumerForbidden: the identified consumer is not in a group the route allows (403).
	ConsumerForbidden Code = "consumer_not_allowed"
	// IPForbidden: the client's IP is denied, or not allowed, by ip-restriction (403).
	IPForbidden Code = "ip_forbidden"
	// CORSOriginForbidden: a CORS preflight from an origin, or asking for a method or
	// header, the route does not allow (403).
	CORSOriginForbidden Code = "cors_forbidden"
	// CORSPreflight: a CORS preflight answered by the gateway (204; not an error).
	CORSPreflight Code = "cors_preflight"
)

func init() {
	for c, d := range map[Code]string{
		AuthMissing:         "this route requires credentials and the request has none",
		AuthInvalid:         "the credentials are not valid",
		ConsumerForbidden:   "the authenticated consumer is not allowed on this route",
		IPForbidden:         "the client address is not allowed on this route",
		CORSOriginForbidden: "the cross-origin request is not allowed by this route's CORS policy",
		CORSPreflight:       "the gateway answered a CORS preflight",
	} {
		descriptions[c] = d
	}
}
