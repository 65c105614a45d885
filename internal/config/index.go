package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxIndexDepth bounds the walk of the node tree; deeper nodes are not indexed (a valid
// config is less than ten levels deep, and the YAML parser bounds depth itself).
const maxIndexDepth = 64

// nodeIndex maps field paths such as "routes[2].match.path" to the YAML nodes they came
// from, so that problems found after decoding (explicit zeros, validation) can name a line,
// and the YAML library's "line N" messages can name a field path.
type nodeIndex struct {
	entries []indexEntry   // pre-order: parents before children
	byPath  map[string]int // first entry of each path
	byLine  map[int][]int  // entries whose key or value starts on a line, in pre-order
}

type indexEntry struct {
	path string
	key  *yaml.Node // nil for sequence items and the root
	val  *yaml.Node
}

// buildIndex indexes the tree under root. Alias nodes are recorded but not followed.
func buildIndex(root *yaml.Node) *nodeIndex {
	x := &nodeIndex{byPath: map[string]int{}, byLine: map[int][]int{}}
	x.walk("", nil, root, 0)
	return x
}

func (x *nodeIndex) walk(path string, key, n *yaml.Node, depth int) {
	if _, ok := x.byPath[path]; !ok {
		x.byPath[path] = len(x.entries)
	}
	i := len(x.entries)
	x.entries = append(x.entries, indexEntry{path: path, key: key, val: n})
	x.byLine[n.Line] = append(x.byLine[n.Line], i)
	if key != nil && key.Line != n.Line {
		x.byLine[key.Line] = append(x.byLine[key.Line], i)
	}
	if depth >= maxIndexDepth {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			x.walk(p, k, v, depth+1)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			x.walk(path+"["+strconv.Itoa(i)+"]", nil, v, depth+1)
		}
	}
}

// explicit reports whether path was written in the file with a non-null value.
func (x *nodeIndex) explicit(path string) bool {
	if x == nil {
		return false
	}
	i, ok := x.byPath[path]
	return ok && !isNull(x.entries[i].val)
}

// line returns the line of path, or of its nearest ancestor present in the file
// (a missing required field is reported on the line of the object that lacks it).
// It returns 0 when nothing is known.
func (x *nodeIndex) line(path string) int {
	if x == nil {
		return 0
	}
	for {
		if i, ok := x.byPath[path]; ok {
			e := x.entries[i]
			if e.key != nil {
				return e.key.Line
			}
			return e.val.Line
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// parentPath strips the last ".name" or "[i]" from path.
func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// nulls returns the paths of mapping values written with no value ("key:" or "key: ~").
func (x *nodeIndex) nulls() []indexEntry {
	var out []indexEntry
	for _, e := range x.entries {
		if e.key != nil && isNull(e.val) {
			out = append(out, e)
		}
	}
	return out
}

// find returns the entry a YAML library message about line refers to: the last entry (the
// deepest, in pre-order) on that line for which match returns true.
func (x *nodeIndex) find(line int, match func(indexEntry) bool) (indexEntry, bool) {
	var found indexEntry
	ok := false
	for _, i := range x.byLine[line] {
		if e := x.entries[i]; match(e) {
			found, ok = e, true
		}
	}
	return found, ok
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
