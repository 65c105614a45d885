package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Plugin is one plugin attached globally (Config.Plugins), to an upstream or to a route. The
// plugin package decodes Config strictly when the gateway builds the config; docs/plugins.md
// lists the plugins and their fields.
type Plugin struct {
	// Name is the plugin's registered name, such as "key-auth". Required.
	Name string `yaml:"name"`
	// Config holds the plugin's own settings, decoded by the plugin (unknown keys are
	// errors). Omitted: the plugin's defaults.
	Config yaml.Node `yaml:"config"`

	// Line is the line the entry starts on, for problems with it (set by decoding). Not YAML.
	Line int `yaml:"-"`

	unknown []string // keys other than name and config (UnmarshalYAML)
}

// UnmarshalYAML decodes an entry and records its line. Its keys are checked here, since a
// custom decoder is not strict: unknown ones are reported by Validate (validatePlugins).
func (p *Plugin) UnmarshalYAML(n *yaml.Node) error {
	type plain Plugin
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.Line = n.Line
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value != "name" && k.Value != "config" {
				p.unknown = append(p.unknown, k.Value)
			}
		}
	}
	return nil
}

// Consumer is a named API client. Auth plugins identify a request's consumer from the
// credentials listed here; the access log names it and routes can require its groups.
type Consumer struct {
	// Name identifies the consumer in logs, metrics and the X-Consumer-Name upstream header.
	// Required, unique; letters, digits, '_', '.', '-'.
	Name string `yaml:"name"`
	// Groups the consumer belongs to (for consumer-restriction). Omitted: none.
	Groups []string `yaml:"groups"`
	// Labels are free-form key/value pairs that plugins may read. Omitted: none.
	Labels map[string]string `yaml:"labels"`
	// Credentials are the consumer's credentials by auth plugin name, e.g.
	// {key-auth: {keys: [...]}, basic-auth: {username: u, password_hash: "$2a$..."}}; each is
	// decoded by that plugin. Omitted: none (the consumer cannot authenticate).
	Credentials map[string]yaml.Node `yaml:"credentials"`
}

// Node is a piece of the configuration that a plugin decodes itself (its config, or a
// consumer's credentials for it), with what is needed to report its problems the way
// [Parse] does: file:line and the full field path.
type Node struct {
	// File is the config file name (Config.File).
	File string
	// Path is the node's field path, e.g. "routes[2].plugins[0].config".
	Path string
	// Context prefixes every message, e.g. `route "api": plugin key-auth: `.
	Context string
	// Y is the node; nil or zero when the key was omitted.
	Y *yaml.Node
	// Line is reported for problems when Y has none (an omitted node): the line of the
	// entry that holds it.
	Line int
	// Secret: the node holds credentials, so Decode's messages do not quote its values.
	Secret bool
}

// reGotValue is the quoted value at the end of a type mismatch message.
var reGotValue = regexp.MustCompile(`(got (?:a string|an integer|a number|a boolean|null)) ".*"$`)

// Decode decodes the node strictly into v (a pointer to a struct with yaml tags): unknown
// keys and values of the wrong type are errors. An omitted node leaves v as it is. The
// error joins one *FieldError per problem, each with its line and full path.
func (n Node) Decode(v any) error {
	if n.Y == nil || n.Y.Kind == 0 || isNull(n.Y) {
		return nil
	}
	idx := buildIndex(n.Y)
	var p problems
	checkKnown(n.Y, reflect.TypeOf(v), "", &p)
	if err := n.Y.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				p = append(p, rewordDecodeError(m, idx))
			}
		} else {
			line, rest := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
			p = append(p, &FieldError{Line: line, Msg: rest})
		}
	}
	for _, e := range p {
		if e.Line == 0 {
			e.Line = idx.line(e.Path)
		}
		e.Path = joinPath(n.Path, e.Path)
		if n.Secret {
			e.Msg = reGotValue.ReplaceAllString(e.Msg, "$1 (not shown: credentials)")
		}
		e.Msg = n.Context + e.Msg
	}
	return p.join(n.File, nil)
}

// Errorf returns a problem with field (a path below the node such as "header" or
// "allow[2]"; "" for the node itself), with its line and full path.
func (n Node) Errorf(field, format string, args ...any) error {
	fe := &FieldError{File: n.File, Path: joinPath(n.Path, field), Msg: n.Context + fmt.Sprintf(format, args...)}
	if n.Y != nil && n.Y.Kind != 0 {
		fe.Line = buildIndex(n.Y).line(field)
	}
	if fe.Line == 0 && n.Y != nil {
		fe.Line = n.Y.Line
	}
	if fe.Line == 0 {
		fe.Line = n.Line
	}
	return fe
}

func joinPath(base, rel string) string {
	switch {
	case rel == "":
		return base
	case base == "" || strings.HasPrefix(rel, "["):
		return base + rel
	}
	return base + "." + rel
}

// checkKnown reports the mapping keys of n that t (a struct, through pointers, slices and
// maps) has no yaml field for: Node.Decode's strictness, which yaml.Node.Decode lacks.
func checkKnown(n *yaml.Node, t reflect.Type, path string, p *problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKnown(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), p)
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && t != reflect.TypeFor[yaml.Node]():
		fields := map[string]reflect.Type{}
		var names []string
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
				names = append(names, name)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown field %q", k.Value) + suggestFrom(k.Value, names)
				*p = append(*p, &FieldError{Line: k.Line, Path: joinPath(path, k.Value), Msg: msg})
				continue
			}
			checkKnown(n.Content[i+1], ft, joinPath(path, k.Value), p)
		}
	}
}

// validatePlugins checks what config itself knows of plugins and consumers: names present,
// consumers unique, listeners' trusted proxies. The plugins check their own settings when the
// gateway builds them (plugin.Build), with the same file:line form.
func (c *Config) validatePlugins(p *problems) {
	checkPluginList(p, "plugins", c.Plugins)
	for i, u := range c.Upstreams {
		checkPluginList(p, fmt.Sprintf("upstreams[%d].plugins", i), u.Plugins)
	}
	for i, r := range c.Routes {
		checkPluginList(p, fmt.Sprintf("routes[%d].plugins", i), r.Plugins)
	}
	seen := map[string]int{}
	for i, cs := range c.Consumers {
		b := fmt.Sprintf("consumers[%d]", i)
		if checkID(p, b+".name", cs.Name) {
			if j, dup := seen[cs.Name]; dup {
				p.add(b+".name", "duplicate consumer %q (also consumers[%d])", cs.Name, j)
			}
			seen[cs.Name] = i
		}
		for j, g := range cs.Groups {
			checkID(p, fmt.Sprintf("%s.groups[%d]", b, j), g)
		}
	}
	for i, l := range c.Listeners {
		b := fmt.Sprintf("listeners[%d]", i)
		for j, s := range l.TrustedProxies {
			if _, err := ParsePrefix(s); err != nil {
				p.add(fmt.Sprintf("%s.trusted_proxies[%d]", b, j), "%v", err)
			}
		}
		if l.ProxyProtocol && len(l.TrustedProxies) == 0 {
			p.add(b+".proxy_protocol", "needs trusted_proxies: only a trusted peer may name the client")
		}
	}
}

// suggestFrom returns " (did you mean ...?)" for a key close to one of keys, else the list.
func suggestFrom(name string, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (valid: " + strings.Join(keys, ", ") + ")"
}

func checkPluginList(p *problems, path string, list []Plugin) {
	for i, pl := range list {
		for _, k := range pl.unknown {
			p.add(fmt.Sprintf("%s[%d].%s", path, i, k), "unknown field %q%s", k, suggestField(k, "config.Plugin"))
		}
		if pl.Name == "" {
			p.add(fmt.Sprintf("%s[%d].name", path, i), "required, such as \"key-auth\"")
		}
	}
}

// ParsePrefix parses a CIDR ("10.0.0.0/8") or a single address (as a /32 or /128). An IPv4
// address written in IPv6 form (::ffff:10.0.0.1) is taken as the IPv4 address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		if pf.Addr().Is4In6() && pf.Bits() >= 96 {
			pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
		}
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
