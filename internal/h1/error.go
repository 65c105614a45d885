package h1

import "strconv"

// Error is a protocol violation found while parsing a message. Status is the HTTP status a
// server should answer with: 400 for malformed messages and smuggling shapes, 431 when the
// head is too large or has too many fields, 414 when the request-target alone exceeds the
// head limit, 501 for an unsupported transfer-coding or request form, 505 for an
// unsupported HTTP version. Errors from [ReadResponse] always carry 502, the status a
// gateway answers with when its upstream misbehaves.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return "h1: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// asUpstream turns a parse error into the 502 a gateway answers for a bad upstream message.
// Other errors (I/O, EOF) pass through unchanged.
func asUpstream(err error) error {
	if e, ok := err.(*Error); ok && e.Status != 502 {
		return &Error{Status: 502, Reason: e.Reason}
	}
	return err
}
