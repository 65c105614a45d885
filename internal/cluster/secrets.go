package cluster

import (
	"bytes"
	"fmt"
	"strings"

	"sluice/internal/admin"
)

// redactObject returns the stored value of the object at rel (a key relative to the
// prefix) with its secrets redacted as /admin/config redacts them: consumers' credentials
// and secret fields of plugin configs (in settings, and in an upstream's or a route's
// plugins). A value that does not decode is returned as it is (it holds no config).
func redactObject(rel string, v []byte) []byte {
	m, err := decodeObject(v)
	if err != nil {
		return v
	}
	if rel == KindSettings {
		admin.RedactSecrets(m)
	} else {
		kind, _, _ := strings.Cut(rel, "/")
		admin.RedactSecrets(map[string]any{kind: []any{m}})
	}
	out, err := canonicalJSON(m)
	if err != nil {
		return v
	}
	return out
}

// checkNotRedacted refuses a value that holds a redacted secret: written back, it would
// replace the secret with the placeholder.
func checkNotRedacted(what string, v []byte) error {
	if bytes.Contains(v, []byte(admin.Redacted)) {
		return fmt.Errorf("%s holds %q, a secret left out of a GET or a pull: write the secret itself (or, with PATCH, leave the field out)", what, admin.Redacted)
	}
	return nil
}

// CheckNotRedacted is checkNotRedacted for a config file given to `sluice config push`.
func CheckNotRedacted(file string, data []byte) error { return checkNotRedacted(file, data) }
