package proxy

import (
	"net/url"
	"strings"

	"sluice/internal/h1"
	"sluice/internal/upstream"
)

// reqInfo exposes the request to balancers (upstream.Request). Values are computed only
// when a balancer asks, so round robin pays nothing.
// It holds one pointer, so that passing it as an interface does not allocate.
type reqInfo struct{ f *forward }

var _ upstream.Request = reqInfo{}

func (r reqInfo) ClientIP() string { return r.f.clientIP }

func (r reqInfo) URI() string { return string(r.f.req.Target) }

func (r reqInfo) HeaderValue(name string) (string, bool) {
	v, ok := r.f.req.Header.Get(name)
	return string(v), ok
}

func (r reqInfo) QueryValue(name string) (string, bool) {
	if r.f.req.Query == nil {
		return "", false
	}
	q, err := url.ParseQuery(string(r.f.req.Query))
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
	for _, f := range r.f.req.Header.Fields {
		if !h1.EqualFold(f.Name, "Cookie") {
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
