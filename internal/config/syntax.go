package config

import (
	"regexp"
	"strings"
)

// The YAML parser's syntax errors name the symptom ("found character that cannot start any
// token"), and for a tab sometimes the line before it. syntaxError recognizes the two
// mistakes people make most in a config file and says what to do instead.

var (
	// reUnquotedStar finds a plain (unquoted) scalar that starts with '*': after "key: ",
	// "- ", "[" or ",". YAML reads "*name" as an alias, so "*.example.com" does not parse.
	reUnquotedStar = regexp.MustCompile(`(?:^\s*-\s+|:\s+|[\[,]\s*)\*`)
)

// syntaxError rewords a YAML parser error ("yaml: line 3: did not find expected key").
func syntaxError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, rest := splitLine(msg)
	lines := strings.Split(string(data), "\n")
	if n := firstTabIndent(lines); n > 0 && (strings.Contains(rest, "tab") || strings.Contains(rest, "cannot start any token")) {
		return &FieldError{File: file, Line: n, Msg: "invalid YAML: a tab in the indentation; YAML allows only spaces for indentation: replace the tab with spaces"}
	}
	if strings.Contains(rest, "did not find expected alphabetic or numeric character") {
		for _, n := range []int{line, line + 1, line - 1} {
			if n >= 1 && n <= len(lines) && reUnquotedStar.MatchString(stripComment(lines[n-1])) {
				return &FieldError{File: file, Line: n, Msg: `invalid YAML: a value starts with "*", which YAML reads as an alias: quote values that start with *, as in "*.example.com"`}
			}
		}
	}
	return &FieldError{File: file, Line: line, Msg: "invalid YAML: " + rest}
}

// firstTabIndent returns the 1-based number of the first line whose indentation holds a
// tab, 0 when none does.
func firstTabIndent(lines []string) int {
	for i, l := range lines {
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if strings.Contains(indent, "\t") && strings.TrimSpace(l) != "" {
			return i + 1
		}
	}
	return 0
}

// stripComment cuts a "# comment" off a line (a '#' at the start or after a blank, outside
// quotes).
func stripComment(l string) string {
	var quote byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i]
		}
	}
	return l
}
