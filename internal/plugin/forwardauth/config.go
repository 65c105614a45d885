package forwardauth

import (
	"fmt"
	"net/textproto"
	"time"

	"sluice/internal/config"
	"sluice/internal/plugin"
)

// Defaults of [Config] not already in [Options].
var (
	DefaultRequestHeaders = []string{"Authorization", "Cookie"}
	DefaultClientHeaders  = []string{"WWW-Authenticate", "Location", "Set-Cookie"}
)

// Config is the forward-auth plugin's config (docs/plugins.md#forward-auth).
type Config struct {
	// Address is the auth service's URL (http:// or https://, with its path), asked with a
	// GET for every request. Required.
	Address string `yaml:"address"`
	// Timeout bounds one check; the request's own deadline bounds it too. Default 5s; 0
	// means the default.
	Timeout config.Duration `yaml:"timeout"`
	// RequestHeaders are the client request's headers sent to the auth service.
	// X-Forwarded-Method, -Proto, -Host, -Uri and -For are always sent, set by the gateway.
	// Default [Authorization, Cookie].
	RequestHeaders []string `yaml:"request_headers"`
	// ResponseHeaders are copied from the auth service's 2xx answer to the upstream request.
	// The client's own fields of those names are always removed first, so a client cannot
	// forge them. Default: none.
	ResponseHeaders []string `yaml:"response_headers"`
	// ClientHeaders are copied from the auth service's non-2xx answer to the client (with its
	// status and body). Default [WWW-Authenticate, Location, Set-Cookie]; Content-Type always
	// goes with the body.
	ClientHeaders []string `yaml:"client_headers"`
	// ConsumerHeader names a header of the 2xx answer whose value is a consumer's name: that
	// consumer is identified for the request (rate limits, logs, X-Consumer-Name). Default:
	// none.
	ConsumerHeader string `yaml:"consumer_header"`
	// RequireConsumer refuses (403 auth_unknown_consumer) an allowed request whose
	// consumer_header names no configured consumer. Default false.
	RequireConsumer bool `yaml:"require_consumer"`
	// MaxBodyBytes bounds the denial body passed to the client; the rest is dropped.
	// Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxIdleConns bounds the idle keep-alive connections kept to the auth service.
	// Default 64.
	MaxIdleConns int `yaml:"max_idle_conns"`
}

// Problem is one config problem: the field below the plugin's config and what is wrong.
type Problem struct{ Field, Msg string }

// compile checks c and returns the client options, with every problem found.
func (c Config) compile() (Options, []Problem) {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{field, fmt.Sprintf(format, args...)})
	}
	if c.Address == "" {
		add("address", "required")
	} else if _, err := NewClient(Options{URL: c.Address}); err != nil {
		add("address", "%v", err)
	}
	check := func(field string, names []string) []string {
		out := make([]string, 0, len(names))
		for i, n := range names {
			switch {
			case !plugin.IsToken(n):
				add(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid header name", n)
			case HopByHop(n):
				add(fmt.Sprintf("%s[%d]", field, i), "%q is a connection or framing field and is never copied", n)
			}
			out = append(out, textproto.CanonicalMIMEHeaderKey(n))
		}
		return out
	}
	req := c.RequestHeaders
	if req == nil {
		req = DefaultRequestHeaders
	}
	cl := c.ClientHeaders
	if cl == nil {
		cl = DefaultClientHeaders
	}
	o := Options{URL: c.Address, Timeout: c.Timeout.D(), MaxBodyBytes: c.MaxBodyBytes,
		MaxIdleConns: c.MaxIdleConns, ConsumerHeader: c.ConsumerHeader}
	o.RequestHeaders = check("request_headers", req)
	o.ResponseHeaders = check("response_headers", c.ResponseHeaders)
	o.ClientHeaders = check("client_headers", cl)
	for i, n := range o.ResponseHeaders {
		if n == "X-Consumer-Name" {
			add(fmt.Sprintf("response_headers[%d]", i), "X-Consumer-Name is set by the gateway; use consumer_header")
		}
	}
	if c.ConsumerHeader != "" && !plugin.IsToken(c.ConsumerHeader) {
		add("consumer_header", "%q is not a valid header name", c.ConsumerHeader)
	}
	if c.RequireConsumer && c.ConsumerHeader == "" {
		add("require_consumer", "needs consumer_header")
	}
	if c.MaxBodyBytes < 0 {
		add("max_body_bytes", "must not be negative")
	}
	if c.MaxIdleConns < 0 {
		add("max_idle_conns", "must not be negative")
	}
	if c.Timeout.D() > 0 && c.Timeout.D() < time.Millisecond {
		add("timeout", "%v is too short", c.Timeout.D())
	}
	return o, ps
}
