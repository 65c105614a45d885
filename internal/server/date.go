package server

// The Date field. RFC 9110 §6.6.1: an origin server with a clock must send Date in its
// 2xx, 3xx and 4xx responses (and may in 5xx), and a recipient with a clock that forwards
// a response without one must add one. The gateway is the origin of its own answers (its
// errors, the plugins' answers, static responses, redirects), and forwards the backends'
// responses: every final response head gets the gateway's Date unless it has one, over
// HTTP/1.1 and HTTP/2 alike (a backend's own Date passes as it is).
//
// The value is formatted once a second and shared: a response reads the current value
// with one atomic load and one clock read, and allocates nothing (the formatting, once a
// second by whichever response notices the new second, allocates one small value).

import (
	"net/http"
	"sync/atomic"
	"time"

	"sluice/internal/h1"
)

// dateValue is the formatted Date of one second; never changed once published.
type dateValue struct {
	sec int64
	b   [dateLen]byte // IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"
}

// dateLen is the length of an IMF-fixdate.
const dateLen = len(http.TimeFormat)

var curDate atomic.Pointer[dateValue]

// httpDate returns now as an IMF-fixdate (RFC 9110 §5.6.7). The bytes are shared and must
// not be changed.
func httpDate(now time.Time) []byte {
	sec := now.Unix()
	d := curDate.Load()
	if d == nil || d.sec != sec {
		d = &dateValue{sec: sec}
		now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
		curDate.Store(d)
	}
	return d.b[:]
}

// needsDate reports whether a response head with status and fields h gets the gateway's
// Date: a final response whose fields have none.
func needsDate(status int, h *h1.Header) bool {
	return status >= 200 && (h == nil || !h.Has("Date"))
}
