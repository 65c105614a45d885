package router

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"sluice/internal/config"
)

// pathSpec is a compiled path condition: where its routes go and how they rank.
type pathSpec struct {
	kind  pathKind
	a, b  int                  // rank fields, see rank.pathA and rank.pathB
	steps []step               // segments leading to the node (tree kinds only)
	list  func(*node) *[]entry // the node's list that holds the route
}

func exactList(n *node) *[]entry     { return &n.exact }
func restList(n *node) *[]entry      { return &n.rest }
func prefixEndList(n *node) *[]entry { return &n.prefixEnd }
func prefixDirList(n *node) *[]entry { return &n.prefixDir }

// compilePath compiles the path condition of m, storing the regex or template in r.
// On error it also names the field.
func compilePath(m *config.Match, r *route) (pathSpec, string, error) {
	given := 0
	for _, s := range []string{m.Path, m.PathPrefix, m.PathRegex} {
		if s != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return pathSpec{}, "path", fmt.Errorf("%w: at most one of path, path_prefix, path_regex may be given", ErrInvalidPath)
	case m.Path != "":
		p, tmpl, err := parseTemplate(m.Path)
		r.tmpl = tmpl
		return p, "path", err
	case m.PathPrefix != "":
		p, err := parsePrefix(m.PathPrefix)
		return p, "path_prefix", err
	case m.PathRegex != "":
		re, err := regexp.Compile(m.PathRegex)
		if err != nil {
			return pathSpec{}, "path_regex", err
		}
		r.pathRe = re
		return pathSpec{kind: pathRegex}, "", nil
	}
	return pathSpec{kind: pathNone}, "", nil
}

// parsePrefix compiles a literal path prefix. A prefix ending in "/" is attached to the
// node of the segments before that slash and needs the path to go on; any other prefix
// matches only at a segment boundary, so it is attached to the node of its last segment
// and matches whether or not the path goes on.
func parsePrefix(p string) (pathSpec, error) {
	if !strings.HasPrefix(p, "/") {
		return pathSpec{}, fmt.Errorf("%w %q: must start with \"/\"", ErrInvalidPath, p)
	}
	spec := pathSpec{kind: pathPrefix, a: len(p), list: prefixEndList}
	body := p[1:]
	if strings.HasSuffix(p, "/") {
		spec.list = prefixDirList
		if p == "/" { // every path
			return spec, nil
		}
		body = p[1 : len(p)-1]
	}
	for _, seg := range strings.Split(body, "/") {
		spec.steps = append(spec.steps, step{lit: seg})
	}
	return spec, nil
}

// parseTemplate compiles an exact path or a template. A segment is either literal or a
// whole "{name}"; only the last may be "{name...}". Names are letters, digits and '_',
// unique within the template. tmpl is nil for an exact path.
func parseTemplate(p string) (spec pathSpec, tmpl *template, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w %q: %w", ErrInvalidPath, p, err)
		}
	}()
	if !strings.HasPrefix(p, "/") {
		return pathSpec{}, nil, errors.New(`must start with "/"`)
	}
	segs := strings.Split(p[1:], "/")
	spec = pathSpec{kind: pathExact, list: exactList}
	var params []tparam
	for i, seg := range segs {
		if !strings.ContainsAny(seg, "{}") {
			spec.steps = append(spec.steps, step{lit: seg})
			continue
		}
		name, rest, err := parseParam(seg)
		if err != nil {
			return pathSpec{}, nil, err
		}
		if rest && i != len(segs)-1 {
			return pathSpec{}, nil, fmt.Errorf("%q must be the last segment", seg)
		}
		for _, q := range params {
			if q.name == name {
				return pathSpec{}, nil, fmt.Errorf("duplicate parameter %q", name)
			}
		}
		params = append(params, tparam{name: name, seg: i, rest: rest})
		if rest {
			spec.list = restList // the catch-all hangs off the node before it
		} else {
			spec.steps = append(spec.steps, step{param: true})
		}
	}
	if len(params) == 0 {
		return spec, nil, nil
	}
	spec.kind = pathTemplate
	spec.a = -len(params)
	spec.b = strings.IndexByte(p, '{')
	return spec, &template{params: params}, nil
}

// parseParam parses a "{name}" or "{name...}" segment.
func parseParam(seg string) (name string, rest bool, err error) {
	inner, ok := strings.CutPrefix(seg, "{")
	if ok {
		inner, ok = strings.CutSuffix(inner, "}")
	}
	if !ok {
		return "", false, fmt.Errorf("segment %q: a parameter must be a whole segment", seg)
	}
	name, rest = strings.CutSuffix(inner, "...")
	if name == "" {
		return "", false, fmt.Errorf("segment %q: empty parameter name", seg)
	}
	for _, c := range name {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return "", false, fmt.Errorf("segment %q: parameter names use letters, digits and '_'", seg)
		}
	}
	return name, rest, nil
}
