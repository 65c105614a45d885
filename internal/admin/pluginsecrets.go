package admin

// secretFields are the plugin config fields whose values are secrets (jwt-auth's HMAC
// keys[].secret).
var secretFields = map[string]bool{"secret": true}

// redactPluginSecrets replaces the secret fields of every plugin config (global, upstreams'
// and routes') in a rendered config with "<redacted>".
func redactPluginSecrets(cfg map[string]any) {
	lists := []any{cfg["plugins"]}
	for _, key := range []string{"upstreams", "routes"} {
		items, _ := cfg[key].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				lists = append(lists, m["plugins"])
			}
		}
	}
	for _, l := range lists {
		ps, _ := l.([]any)
		for _, p := range ps {
			if m, ok := p.(map[string]any); ok {
				redactSecrets(m["config"])
			}
		}
	}
}

// redactSecrets walks v (maps and lists) and redacts the values of secret fields.
func redactSecrets(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretFields[k] {
				x[k] = redacted
				continue
			}
			redactSecrets(e)
		}
	case []any:
		for _, e := range x {
			redactSecrets(e)
		}
	}
}
