package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestAccessFieldSet: the default is every field but query, which only access_query lets
// in; a list keeps only its fields, an exclude list drops its own.
func TestAccessFieldSet(t *testing.T) {
	all := AllAccessFields
	noQuery := all &^ (1 << AccessQuery)
	for _, tc := range []struct {
		name string
		log  Log
		want AccessFieldSet
	}{
		{name: "default", log: Log{}, want: noQuery},
		{name: "default with query", log: Log{AccessQuery: true}, want: all},
		{name: "list", log: Log{AccessFields: []string{"status", "time", "path"}},
			want: 1<<AccessTime | 1<<AccessPath | 1<<AccessStatus},
		{name: "list names query without access_query", log: Log{AccessFields: []string{"query", "path"}},
			want: 1 << AccessPath},
		{name: "list with query", log: Log{AccessQuery: true, AccessFields: []string{"query"}},
			want: 1 << AccessQuery},
		{name: "exclude", log: Log{AccessExcludeFields: []string{"tries", "user_agent"}},
			want: noQuery &^ (1<<AccessTries | 1<<AccessUserAgent)},
		{name: "empty exclude", log: Log{AccessExcludeFields: []string{}}, want: noQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.log.AccessFieldSet(); got != tc.want {
				t.Errorf("AccessFieldSet() = %#x, want %#x", got, tc.want)
			}
		})
	}
}

// Every field has one name, and the set of all fields fits the bits of AccessFieldSet.
func TestAccessFieldNames(t *testing.T) {
	names := AccessFieldNames()
	if len(names) != int(numAccessFields) || numAccessFields > 64 {
		t.Fatalf("%d names for %d fields (at most 64)", len(names), numAccessFields)
	}
	for f := range numAccessFields {
		n := f.String()
		if n == "" || slices.Index(names, n) != int(f) {
			t.Errorf("field %d: name %q is empty or not unique", f, n)
		}
		if got, ok := accessFieldByName(n); !ok || got != f {
			t.Errorf("accessFieldByName(%q) = %d, %v; want %d", n, got, ok, f)
		}
	}
}

// TestAccessFieldsDocumented: the field table of docs/config.md names every field once, in
// the line's order, which the docs promise for any field list.
func TestAccessFieldsDocumented(t *testing.T) {
	data, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### Access log fields")
	if !ok {
		t.Fatal(`docs/config.md has no "### Access log fields" section`)
	}
	var documented []string
	for line := range strings.Lines(table) {
		if strings.HasPrefix(line, "#") {
			break
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		for name := range strings.SplitSeq(first, ", ") {
			documented = append(documented, strings.Trim(name, "`"))
		}
	}
	if want := AccessFieldNames(); !slices.Equal(documented, want) {
		t.Errorf("docs/config.md's access log fields:\n%q\nwant (config.AccessFieldNames):\n%q", documented, want)
	}
}
