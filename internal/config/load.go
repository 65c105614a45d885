package config

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem in a configuration. Parse and Validate return every problem
// found, joined with errors.Join; use errors.As or a type switch on the joined error's
// Unwrap() []error to get each one.
type FieldError struct {
	File string // file name as given to Parse; "" when unknown
	Line int    // 1-based line; 0 when unknown
	Path string // field path such as "routes[2].upstream"; "" for the whole file
	Msg  string // what is wrong, lower case
}

// Error formats the problem as "file:line: path: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// problems collects FieldErrors by path; Parse adds file and line afterwards.
type problems []*FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// join stamps file and (when idx is known) lines on every problem, sorts them by line and
// joins them. It returns nil when there are none.
func (p problems) join(file string, idx *nodeIndex) error {
	if len(p) == 0 {
		return nil
	}
	for _, e := range p {
		e.File = file
		if e.Line == 0 {
			e.Line = idx.line(e.Path)
		}
	}
	slices.SortStableFunc(p, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(p))
	for i, e := range p {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// shadowedBy returns the problems of p that do not follow from a decode problem: a field
// that did not decode is left zero, and validating it (or what is inside it) would only
// repeat the decode problem in other words ("required", "0 is not allowed").
func (p problems) shadowedBy(decoded problems, idx *nodeIndex) problems {
	if len(decoded) == 0 {
		return p
	}
	var out problems
	for _, e := range p {
		if !shadowed(e, decoded, idx) {
			out = append(out, e)
		}
	}
	return out
}

func shadowed(e *FieldError, decoded problems, idx *nodeIndex) bool {
	for _, d := range decoded {
		switch {
		case d.Path == "":
			if d.Line > 0 && idx.line(e.Path) == d.Line {
				return true
			}
		case e.Path == d.Path, strings.HasPrefix(e.Path, d.Path+"."), strings.HasPrefix(e.Path, d.Path+"["):
			return true
		}
	}
	return false
}

// Load reads and parses the configuration file at path. See [Parse].
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes one YAML document strictly (unknown keys are errors), sets File and Hash,
// applies the defaults and validates. file names the source in error messages. Every
// problem found is returned together, in one run: when some values do not decode (a string
// where a number belongs, an unknown key), the rest of the file is still decoded, defaulted
// and validated, and only the problems that follow from a value that did not decode (the
// same field or one inside it) are left out.
func Parse(file string, data []byte) (*Config, error) {
	return parseWith(file, data, (*Config).validate)
}

// parseWith is Parse with the validation step given: the whole config's, or one object's
// (ParseObject).
func parseWith(file string, data []byte, validate func(*Config) problems) (*Config, error) {
	data, envProblems := expandEnv(data) // env.go
	root, err := parseDocument(file, data)
	if err != nil {
		return nil, err
	}
	idx := buildIndex(root)
	sum := sha256.Sum256(data)
	c := &Config{}
	decoded, stopped := decodeStrict(data, c, idx)
	// A null item ("- ~") decodes to a nil route; the decoder drops null items of the
	// other lists, whose items are values, so it is dropped here too.
	c.Routes = slices.DeleteFunc(c.Routes, func(r *Route) bool { return r == nil })
	// An environment variable that is not set leaves its value empty: that is not also
	// "required" (shadowedBy drops what follows on its line).
	decoded = append(envProblems, decoded...)
	if stopped {
		// The decoder gave up part-way: validating what it left would mislead.
		return nil, decoded.join(file, idx)
	}
	c.File, c.Hash = file, hex.EncodeToString(sum[:])
	p := explicitZeros(c, idx)
	applyDefaults(c)
	p = append(p, validate(c)...)
	p = append(decoded, p.shadowedBy(decoded, idx)...)
	if err := p.join(file, idx); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDocument parses data into a node tree and returns its top-level mapping.
func parseDocument(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, &FieldError{File: file, Line: 1, Msg: "empty configuration: want a mapping with listeners, upstreams and routes"}
	}
	if err != nil {
		return nil, syntaxError(file, data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &FieldError{File: file, Line: max(next.Line, 1), Msg: "a second YAML document (\"---\"): a config file holds exactly one"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(file, data, err)
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, &FieldError{File: file, Line: 1, Msg: "empty configuration: want a mapping with listeners, upstreams and routes"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{File: file, Line: root.Line, Msg: fmt.Sprintf("the top level must be a mapping with listeners, upstreams and routes, not %s", describeTag(root.ShortTag()))}
	}
	return root, nil
}

// splitLine splits "line N: rest" into N and rest; it returns 0 and msg otherwise.
func splitLine(msg string) (int, string) { return splitNumbered(msg, "line ") }

// splitNumbered splits "<prefix>N: rest" into N and rest; it returns 0 and msg otherwise.
func splitNumbered(msg, prefix string) (int, string) {
	s, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		return 0, msg
	}
	num, rest, ok := strings.Cut(s, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 0, msg
	}
	return n, rest
}

// decodeStrict decodes data into c with unknown keys as errors, and reports every decode
// problem and every key written without a value, reworded as field errors. stopped reports
// a problem that made the decoder give up (a duplicate key) rather than skip one value.
func decodeStrict(data []byte, c *Config, idx *nodeIndex) (p problems, stopped bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, m := range te.Errors {
			p = append(p, rewordDecodeError(m, idx))
			// The decoder drops the whole mapping that holds a duplicate key.
			_, rest := splitLine(m)
			stopped = stopped || reDuplicateKey.MatchString(rest)
		}
	case err != nil:
		line, rest := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
		p = append(p, &FieldError{Line: line, Msg: rest})
		stopped = true
	}
	seen := map[int]bool{}
	for _, e := range p {
		seen[e.Line] = true
	}
	for _, e := range idx.nulls() {
		if !seen[e.key.Line] {
			p = append(p, &FieldError{Path: e.path, Line: e.key.Line, Msg: "no value: write one ({} or [] for empty), or remove the key to get the default"})
		}
	}
	return p, stopped
}
