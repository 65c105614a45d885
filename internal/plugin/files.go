package plugin

import (
	"path/filepath"
	"strings"
)

// Path resolves a file name written in the plugin's config as the rest of the config's
// files are: a relative name is relative to the config file's directory (as is, for an
// embedded or in-memory config).
func (b *Build) Path(name string) string {
	f := b.node.File
	if name == "" || f == "" || strings.HasPrefix(f, "embedded:") || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(f), name)
}
