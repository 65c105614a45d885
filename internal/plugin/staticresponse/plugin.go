// Package staticresponse is the static-response plugin: the gateway answers every request
// of the route with a fixed status, header fields and body (a maintenance page, /robots.txt,
// a health answer), and never contacts the upstream. The body is read once, when the config
// is loaded; a request costs a lookup of nothing and a write. The answer is not an error,
// whatever its status (a maintenance 503 included): reason "static_response" in the access
// log and in sluice_plugin_answers_total, not in sluice_gateway_errors_total.
package staticresponse

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StagePreflight, New: New})
}

// Name is the plugin's name in configs.
const Name = "static-response"

// maxBody bounds the body: it is held in memory for the config's life.
const maxBody = 1 << 20

// StaticResponse is one static-response instance.
type StaticResponse struct {
	status int
	fields [][2]string // name, value, sorted by name
	body   []byte
}

// New builds a static-response instance, reading body_file.
func New(b *plugin.Build) (any, error) {
	c := Config{Status: 200}
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, b.Errorf(field, format, args...)) }
	if c.Status < 200 || c.Status > 599 {
		bad("status", "%d: want 200 to 599", c.Status)
	}
	p := &StaticResponse{status: c.Status, body: []byte(c.Body)}
	switch {
	case c.Body != "" && c.BodyFile != "":
		bad("body_file", "not with body: write one of them")
	case c.BodyFile != "":
		data, err := readBody(b.Path(c.BodyFile))
		if err != nil {
			bad("body_file", "%v", err)
		}
		p.body = data
	}
	if len(p.body) > maxBody {
		bad("body", "the body is %d bytes, at most %d", len(p.body), maxBody)
	}
	if (c.Status == 204 || c.Status == 304) && len(p.body) > 0 {
		bad("body", "a %d answer has no body", c.Status)
	}
	hasType := false
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := plugin.CheckField(n, c.Headers[n]); err != nil {
			bad("headers."+n, "%v", err)
			continue
		}
		hasType = hasType || strings.EqualFold(n, "Content-Type")
		p.fields = append(p.fields, [2]string{n, c.Headers[n]})
	}
	if !hasType && len(p.body) > 0 {
		p.fields = append(p.fields, [2]string{"Content-Type", "text/plain; charset=utf-8"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// readBody reads a body file, refusing one over maxBody before reading it whole.
func readBody(name string) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size() > maxBody {
		return nil, fmt.Errorf("%s is %d bytes, at most %d", name, st.Size(), maxBody)
	}
	return os.ReadFile(name)
}

// Request answers every request with the configured response.
func (p *StaticResponse) Request(r *plugin.Request) error {
	for _, f := range p.fields {
		r.AddResponseField(f[0], f[1])
	}
	return r.AnswerWithBody(p.status, reason.StaticResponse, p.body)
}

var _ plugin.RequestFilter = (*StaticResponse)(nil)
