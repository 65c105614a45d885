package config

import (
	"bytes"
	"os"
	"regexp"
	"strings"
)

// Environment variables in config values: containers and service managers pass addresses
// and keys that way. A value may hold ${NAME}, replaced by the variable's value, or
// ${NAME:-default}, replaced by default when NAME is unset or empty. NAME is upper case
// letters, digits and '_' (the environment's convention), so "${name}" in a
// rewrite.path_replacement stays the regex group it is; "$${" writes a literal "${".
// Replacement happens in the text before YAML parsing, line by line and outside comments,
// so line numbers in errors stay right; a value with YAML syntax in it (": ", "#") should be
// quoted where it is used: address: "${UPSTREAM_ADDR}". A variable that is not set and has
// no default is a config error, as is a value with a line break.

var reEnvRef = regexp.MustCompile(`\$\$\{|\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}`)

// lookupEnv is os.LookupEnv; tests set variables with t.Setenv.
var lookupEnv = os.LookupEnv

// expandEnv replaces the environment references of data (see above) and returns the new
// text and a problem per reference that cannot be replaced, each with its line.
func expandEnv(data []byte) ([]byte, problems) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	var p problems
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		code := stripComment(l)
		if !strings.Contains(code, "${") {
			continue
		}
		expanded := reEnvRef.ReplaceAllStringFunc(code, func(ref string) string {
			if ref == "$${" {
				return "${"
			}
			m := reEnvRef.FindStringSubmatch(ref)
			name, def, hasDefault := m[1], m[2], strings.Contains(ref, ":-")
			v, set := lookupEnv(name)
			switch {
			case (!set || v == "") && hasDefault:
				v = def
			case !set:
				p = append(p, &FieldError{Line: i + 1, Msg: "environment variable " + name + " is not set: set it, or give a default as in ${" + name + ":-value}"})
				return ""
			}
			if strings.ContainsAny(v, "\r\n") {
				p = append(p, &FieldError{Line: i + 1, Msg: "environment variable " + name + " holds a line break; a config value cannot"})
				return ""
			}
			return v
		})
		lines[i] = expanded + l[len(code):]
	}
	return []byte(strings.Join(lines, "")), p
}
