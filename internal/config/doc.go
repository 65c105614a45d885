// Package config holds the declarative configuration of a Sluice gateway: the YAML types,
// their defaults, strict loading and validation, and the embedded demo configuration.
//
// Loading is strict because a configuration that silently means something other than what
// its author wrote is how the incidents behind Sluice started (an idle_timeout of 0 that did
// not turn keep-alive off). So unknown keys, empty values and explicit zeros where 0 has no
// meaning are errors, and every error names the file, the line and the field path:
//
//	sluice.yaml:14: routes[2].upstream: unknown upstream "api"
//
// [Parse] decodes, then applies the defaults (see defaults.go), then validates, and reports
// every problem it finds at once (errors.Join of [*FieldError]). The reference for every
// field is docs/config.md.
package config
