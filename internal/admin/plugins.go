package admin

// redactCredentials replaces every consumer's credentials (API keys, password hashes) in a
// rendered config with "<redacted>", keeping which plugins they are for.
func redactCredentials(cfg map[string]any) {
	cs, _ := cfg["consumers"].([]any)
	for _, c := range cs {
		m, _ := c.(map[string]any)
		creds, _ := m["credentials"].(map[string]any)
		for k := range creds {
			creds[k] = redacted
		}
	}
	redactPluginSecrets(cfg)
}
