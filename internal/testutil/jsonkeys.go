package testutil

import (
	"encoding/json"
	"strings"
	"testing"
)

// JSONKeys returns the top-level keys of the JSON object line, in order and with repeats
// (encoding/json keeps the last of a repeated key without a word, so a log line that says
// "component" twice decodes fine). It fails t when line is not a JSON object.
func JSONKeys(t testing.TB, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", line)
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
	}
	return out
}

// RepeatedKeys returns the top-level keys that line (a JSON object) has more than once.
func RepeatedKeys(t testing.TB, line string) []string {
	t.Helper()
	seen := map[string]int{}
	var out []string
	for _, k := range JSONKeys(t, line) {
		if seen[k]++; seen[k] == 2 {
			out = append(out, k)
		}
	}
	return out
}
