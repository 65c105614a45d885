package plugin

import (
	"errors"
	"fmt"

	"sluice/internal/h1"
)

// managedFields are the response fields a plugin may not set, add or remove: they frame the
// message or describe one connection (RFC 9110 §7.6.1, RFC 9112 §6), and the gateway writes
// them itself for each downstream protocol.
var managedFields = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade", "Content-Length",
}

// CheckField says what is wrong with a header field a plugin's config sets (value "" for
// a name only, as in a remove list), nil when nothing is: the name must be a token, the value
// must hold no CR, LF, NUL or other control byte nor leading or trailing whitespace (it would
// inject header lines), and the field must not be one the gateway manages per connection or
// for framing (Connection, Transfer-Encoding, Content-Length ...).
func CheckField(name, value string) error {
	var h h1.Header
	h.Add(name, value)
	if h.Validate() != nil {
		if h.Fields[0].Value = nil; h.Validate() != nil {
			return fmt.Errorf("invalid header name %q", name)
		}
		return errors.New("invalid header value: no control characters (CR, LF, NUL) nor leading or trailing spaces")
	}
	for _, m := range managedFields {
		if h1.EqualFold([]byte(name), m) {
			return fmt.Errorf("%s is managed by the gateway (connection and framing fields are written per downstream protocol)", name)
		}
	}
	return nil
}
