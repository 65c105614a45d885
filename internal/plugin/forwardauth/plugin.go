package forwardauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAuth, New: New})
}

// Name is the plugin's name in configs.
const Name = "forward-auth"

// ForwardAuth is one forward-auth instance.
type ForwardAuth struct {
	c   *Client
	log *slog.Logger

	request         []string // client headers sent to the auth service (canonical)
	response        []string // auth service headers set on the upstream request (canonical)
	consumerHeader  string
	requireConsumer bool
	consumers       map[string]*plugin.Consumer

	noConsumer *reason.Error
	stats      Stats
}

// Stats counts the checks' outcomes.
type Stats struct {
	Allowed, Denied, Unavailable, Timeout, Canceled atomic.Uint64
}

// New builds a forward-auth instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	o, ps := c.compile()
	if len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = b.Errorf(p.Field, "%s", p.Msg)
		}
		return nil, errors.Join(errs...)
	}
	cl, err := NewClient(o)
	if err != nil {
		return nil, b.Errorf("address", "%v", err)
	}
	f := &ForwardAuth{c: cl, log: b.Log(), request: o.RequestHeaders, response: o.ResponseHeaders,
		consumerHeader: c.ConsumerHeader, requireConsumer: c.RequireConsumer,
		consumers:  map[string]*plugin.Consumer{},
		noConsumer: reason.New(403, reason.AuthUnknownConsumer, "", errors.New("the auth service named no known consumer"))}
	for _, cs := range b.Consumers() {
		f.consumers[cs.Name] = cs
	}
	return f, nil
}

// Request asks the auth service about the request and acts on its answer.
func (f *ForwardAuth) Request(r *plugin.Request) error {
	h := r.Header()
	in := Request{Method: r.Method(), Proto: "http", Host: r.Host(), URI: r.Path(),
		Header: make(http.Header, len(f.request))}
	if r.TLS() != nil {
		in.Proto = "https"
	}
	if q := r.Query(); q != "" {
		in.URI += "?" + q
	}
	if ip := r.ClientIP(); ip.IsValid() {
		in.ClientIP = ip.String()
	}
	for _, name := range f.request {
		for i := range h.Fields {
			if fl := &h.Fields[i]; plugin.EqualFold(fl.Name, name) {
				in.Header[name] = append(in.Header[name], string(fl.Value))
			}
		}
	}
	d := f.c.Check(r.Context(), &in)
	switch d.Code {
	case CodeAllowed:
		f.stats.Allowed.Add(1)
		return f.allow(r, h, &d)
	case CodeDenied:
		f.stats.Denied.Add(1)
		for name, vals := range d.Header {
			for _, v := range vals {
				r.AddResponseField(name, v)
			}
		}
		return r.AnswerWithBody(d.Status, reason.AuthDenied, d.Body)
	case CodeCanceled:
		f.stats.Canceled.Add(1)
		var re *reason.Error
		if errors.As(context.Cause(r.Context()), &re) {
			return re
		}
		return reason.New(499, reason.ClientBodyError, "", d.Err)
	case CodeTimeout:
		f.stats.Timeout.Add(1)
		f.log.LogAttrs(r.Context(), slog.LevelWarn, "auth service timed out",
			slog.String("route", r.RouteID()), slog.String("error", d.Err.Error()))
		return reason.New(http.StatusGatewayTimeout, reason.AuthTimeout, "", d.Err)
	}
	f.stats.Unavailable.Add(1)
	f.log.LogAttrs(r.Context(), slog.LevelWarn, "auth service unavailable",
		slog.String("route", r.RouteID()), slog.String("error", d.Err.Error()))
	return reason.New(http.StatusServiceUnavailable, reason.AuthUnavailable, "", d.Err)
}

// allow copies the auth service's chosen headers onto the upstream request (the client's
// own fields of those names removed first) and identifies the consumer it named.
func (f *ForwardAuth) allow(r *plugin.Request, h *plugin.Header, d *Decision) error {
	for _, name := range f.response {
		h.Del(name)
		for _, v := range d.Header[name] {
			h.Add(name, v)
		}
	}
	if f.consumerHeader == "" {
		return nil
	}
	if c := f.consumers[d.Consumer]; c != nil {
		r.SetConsumer(c)
	} else if f.requireConsumer {
		return f.noConsumer
	}
	return nil
}

// PluginStats reports the checks' outcomes.
func (f *ForwardAuth) PluginStats(emit func(plugin.Stat)) {
	for _, o := range []struct {
		label string
		n     *atomic.Uint64
	}{{"allowed", &f.stats.Allowed}, {"denied", &f.stats.Denied}, {"unavailable", &f.stats.Unavailable},
		{"timeout", &f.stats.Timeout}, {"canceled", &f.stats.Canceled}} {
		emit(plugin.Stat{Key: "forward_auth_checks", Label: o.label, Value: float64(o.n.Load())})
	}
}

// Close drops the idle connections to the auth service.
func (f *ForwardAuth) Close() error {
	f.c.Close()
	return nil
}

var (
	_ plugin.RequestFilter = (*ForwardAuth)(nil)
	_ plugin.Closer        = (*ForwardAuth)(nil)
	_ plugin.StatsReporter = (*ForwardAuth)(nil)
)
