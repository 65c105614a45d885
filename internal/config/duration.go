package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as a Go duration string ("30s", "1m30s", "250ms").
// A bare integer is rejected because its unit would be a guess.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a duration string. Problems are reported as a *yaml.TypeError
// carrying the line, so the decoder keeps going and every bad value in a file is reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return durationError(n, "expected a duration such as \"30s\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return durationError(n, fmt.Sprintf("invalid duration %q: want a number with a unit, such as \"30s\" or \"250ms\"", n.Value))
	}
	if v < 0 {
		return durationError(n, fmt.Sprintf("invalid duration %q: must not be negative", n.Value))
	}
	*d = Duration(v)
	return nil
}

// durationError is in the YAML library's "line N: message" form, plus the column so that
// Parse can name the exact field.
func durationError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
