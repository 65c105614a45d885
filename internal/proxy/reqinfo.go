package proxy

import (
	"net/url"
	"strings"

	"sluice/internal/server"
	"sluice/internal/upstream"
)

// reqInfo exposes the request to balancers (upstream.Request). Values are computed only
// when a balancer asks, so round robin pays nothing.
type reqInfo struct{ ex *server.Exchange }

var _ upstream.Request = reqInfo{}

func (r reqInfo) ClientIP() string { return r.ex.ClientIP() }

func (r reqInfo) URI() string { return string(r.ex.Req.Target) }

func (r reqInfo) HeaderValue(name string) (string, bool) {
	v, ok := r.ex.Req.Header.Get(name)
	return string(v), ok
}

func (r reqInfo) QueryValue(name string) (string, bool) {
	if r.ex.Req.Query == nil {
		return "", false
	}
	q, err := url.ParseQuery(string(r.ex.Req.Query))
	if err != nil && len(q) == 0 {
		return "", false
	}
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (r reqInfo) CookieValue(name string) (string, bool) {
	for _, f := range r.ex.Req.Header.Fields {
		if !asciiEqualFold(f.Name, "Cookie") {
			continue
		}
		for _, part := range strings.Split(string(f.Value), ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return v, true
			}
		}
	}
	return "", false
}
