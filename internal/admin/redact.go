package admin

// Redacted is what a secret's value is replaced with in a redacted view.
const Redacted = redacted

// RedactSecrets replaces the secrets in a config's top-level sections as decoded from
// YAML or JSON (consumers' credentials, secret fields of plugin configs) with [Redacted]:
// the same redaction as /admin/config, for other views of the config (cluster mode's
// GET of an object, `sluice config pull`).
func RedactSecrets(cfg map[string]any) { redactCredentials(cfg) }
