package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The YAML library reports decode problems as "line N: <message>" strings. rewordDecodeError
// finds the node the message is about (by line, and by the key or value it quotes) to name
// the field path, and rephrases the message for people who write configs, not Go types.

var (
	reUnknownField = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	reUnmarshal    = regexp.MustCompile("^cannot unmarshal (!!\\S+)(?: `(.*)`)? into (.+)$")
	reDuplicateKey = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
)

func rewordDecodeError(msg string, idx *nodeIndex) *FieldError {
	line, rest := splitLine(msg)
	fe := &FieldError{Line: line, Msg: rest}
	if m := reUnknownField.FindStringSubmatch(rest); m != nil {
		name := m[1]
		fe.Msg = fmt.Sprintf("unknown field %q", name) + suggestField(name, m[2])
		if e, ok := idx.find(line, func(e indexEntry) bool { return e.key != nil && e.key.Value == name }); ok {
			fe.Path = e.path
		}
		return fe
	}
	if m := reUnmarshal.FindStringSubmatch(rest); m != nil {
		tag, val := m[1], strings.TrimSuffix(m[2], "...")
		e, ok := idx.find(line, func(e indexEntry) bool {
			return e.val.ShortTag() == tag && strings.HasPrefix(e.val.Value, val)
		})
		got := describeTag(tag)
		if ok {
			fe.Path = e.path
			if tag != "!!seq" && tag != "!!map" {
				got += " " + strconv.Quote(truncate(e.val.Value, 40))
			}
		}
		fe.Msg = fmt.Sprintf("want %s, got %s", describeGoType(m[3]), got)
		return fe
	}
	if m := reDuplicateKey.FindStringSubmatch(rest); m != nil {
		key, _ := strconv.Unquote(m[1])
		if e, ok := idx.find(line, func(e indexEntry) bool { return e.key != nil && e.key.Value == key }); ok {
			fe.Path = e.path
		}
		fe.Msg = fmt.Sprintf("duplicate key %s (first written on line %s)", m[1], m[2])
		return fe
	}
	// Anything else, such as our own Duration errors ("column C: message"): the node at that
	// line and column, or failing that the deepest node on the line.
	col, rest := splitColumn(rest)
	fe.Msg = rest
	e, ok := idx.find(line, func(e indexEntry) bool { return e.val.Line == line && e.val.Column == col })
	if !ok {
		e, ok = idx.find(line, func(indexEntry) bool { return true })
	}
	if ok {
		fe.Path = e.path
	}
	return fe
}

// splitColumn splits "column C: rest" into C and rest; it returns 0 and msg otherwise.
func splitColumn(msg string) (int, string) { return splitNumbered(msg, "column ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func describeTag(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	}
	return strings.TrimPrefix(tag, "!!")
}

func describeGoType(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}

// fieldsByType maps Go type names ("config.Listener") to their YAML keys.
var fieldsByType = func() map[string][]string {
	m := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || m[t.String()] != nil {
			return
		}
		var keys []string
		m[t.String()] = keys
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			keys = append(keys, name)
			visit(f.Type)
		}
		m[t.String()] = keys
	}
	visit(reflect.TypeFor[Config]())
	return m
}()

// suggestField returns "; did you mean ...?" or the list of valid keys of typ.
func suggestField(name, typ string) string {
	return suggestFrom(name, slices.Sorted(slices.Values(fieldsByType[typ])))
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
