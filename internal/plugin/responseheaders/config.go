package responseheaders

// Config is the response-headers plugin's config. At least one of set, add and remove.
type Config struct {
	// Set maps header names to values that replace the upstream's fields of that name
	// (case-insensitive), or are added when it sent none. They are added to the gateway's
	// own answers on the route too (plugin refusals and local answers; not the proxy's
	// 502/504 errors). Default none.
	Set map[string]string `yaml:"set"`
	// Add maps header names to values appended after the upstream's fields (any of the same
	// name are kept), on the gateway's own answers too. Default none.
	Add map[string]string `yaml:"add"`
	// Remove lists header names removed from the upstream's response (case-insensitive),
	// such as Server or X-Powered-By. Default none.
	Remove []string `yaml:"remove"`
}
