package router

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Dump returns a deterministic text form of the compiled table: buckets in the order
// exact hosts, wildcard hosts (each sorted), any host; in each, the segment tree with
// static children sorted, then regex routes, then routes without a path condition.
// Entry lists are printed best first, as Match scans them. It is meant for golden tests
// and debugging, not for parsing.
func (t *Table) Dump() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "routes %d\n", t.n)
	for _, h := range slices.Sorted(maps.Keys(t.exact)) {
		fmt.Fprintf(&sb, "host %s\n", h)
		t.exact[h].dump(&sb, t.pos)
	}
	for _, h := range slices.Sorted(maps.Keys(t.wild)) {
		fmt.Fprintf(&sb, "host *.%s\n", h)
		t.wild[h].dump(&sb, t.pos)
	}
	if t.anyHost != nil {
		sb.WriteString("host (any)\n")
		t.anyHost.dump(&sb, t.pos)
	}
	return sb.String()
}

func (b *bucket) dump(sb *strings.Builder, pos []int32) {
	b.root.dump(sb, pos, "  /", 2)
	dumpList(sb, pos, "  ", "regex", b.regex)
	dumpList(sb, pos, "  ", "any path", b.anyPath)
}

// dump writes n, named label, and its subtree; children are indented by two more spaces.
func (n *node) dump(sb *strings.Builder, pos []int32, label string, depth int) {
	if n.empty() {
		return
	}
	sb.WriteString(label)
	sb.WriteByte('\n')
	ind := strings.Repeat(" ", depth+2)
	dumpList(sb, pos, ind, "exact", n.exact)
	dumpList(sb, pos, ind, "prefix", n.prefixEnd)
	dumpList(sb, pos, ind, "prefix/", n.prefixDir)
	dumpList(sb, pos, ind, "{...}", n.rest)
	for _, seg := range slices.Sorted(maps.Keys(maps.Collect(n.static.all()))) {
		n.static.get(seg).dump(sb, pos, fmt.Sprintf("%s%q", ind, seg), depth+2)
	}
	if n.param != nil {
		n.param.dump(sb, pos, ind+"{}", depth+2)
	}
}

// empty reports whether n's subtree holds no routes.
func (n *node) empty() bool {
	if len(n.exact)+len(n.rest)+len(n.prefixEnd)+len(n.prefixDir) > 0 {
		return false
	}
	for _, c := range n.static.all() {
		if !c.empty() {
			return false
		}
	}
	return n.param == nil || n.param.empty()
}

func dumpList(sb *strings.Builder, pos []int32, ind, label string, es []entry) {
	for _, e := range es {
		r, k := e.route, e.rank
		fmt.Fprintf(sb, "%s%s: #%d %q prio=%d host=%s path=%s", ind, label, pos[r.slot], r.id,
			k.priority, hostRankString(k.host), pathRankString(k))
		if len(r.methods) > 0 {
			fmt.Fprintf(sb, " methods=%s", strings.Join(r.methods, ","))
		}
		if r.pathRe != nil {
			fmt.Fprintf(sb, " regex=%q", r.pathRe.String())
		}
		if r.tmpl != nil {
			names := make([]string, len(r.tmpl.params))
			for i, p := range r.tmpl.params {
				names[i] = p.name
			}
			fmt.Fprintf(sb, " params=%s", strings.Join(names, ","))
		}
		fmt.Fprintf(sb, " headers=%d query=%d", len(r.headers), len(r.query))
		if len(r.tls) > 0 {
			fmt.Fprintf(sb, " tls=%d", len(r.tls)) // only when set: the golden dumps predate it
		}
		sb.WriteString("\n")
	}
}

func hostRankString(h int) string {
	switch h {
	case hostAny:
		return "any"
	case hostExact:
		return "exact"
	}
	return fmt.Sprintf("wildcard(%d)", h-1)
}

func pathRankString(k rank) string {
	switch k.path {
	case pathExact:
		return "exact"
	case pathTemplate:
		return fmt.Sprintf("template(params=%d,literal=%d)", -k.pathA, k.pathB)
	case pathPrefix:
		return fmt.Sprintf("prefix(%d)", k.pathA)
	case pathRegex:
		return "regex"
	}
	return "any"
}
