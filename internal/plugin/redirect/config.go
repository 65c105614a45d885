package redirect

// Config is the redirect plugin's config. Each part of the Location left out is the
// request's own; at least one part must change.
type Config struct {
	// Status is the redirect's status: 301, 302, 303, 307 or 308. 301 and 302 let clients
	// turn a POST into a GET; 307 and 308 keep the method and body. Default 302.
	Status int `yaml:"status"`
	// Scheme is the Location's scheme, "http" or "https". Default "": the request's (https
	// when it came over TLS).
	Scheme string `yaml:"scheme"`
	// Host is the Location's host name or IP (IPv6 in brackets), without port. Default "":
	// the request's Host without its port.
	Host string `yaml:"host"`
	// Port is the Location's port, written unless it is the scheme's default (80 for http,
	// 443 for https). Default 0: the request's port when neither scheme nor host changes,
	// otherwise none (the scheme's default port).
	Port int `yaml:"port"`
	// Path replaces the request's path (it must start with "/"). Default "": the request's
	// path (or path_regex's rewrite). Not with path_regex.
	Path string `yaml:"path"`
	// PathRegex is an RE2 expression: only requests whose path matches are redirected (the
	// others go on to the upstream), to the path PathReplacement makes of it ($1 or ${name}
	// for capture groups). Both or neither.
	PathRegex       string `yaml:"path_regex"`
	PathReplacement string `yaml:"path_replacement"`
	// Query is what becomes of the request's query: "keep" (default) or "drop".
	Query string `yaml:"query"`
	// AppendQuery is appended to the Location's query ("from=legacy&v=2"), after the kept
	// query with "&". Default "": nothing.
	AppendQuery string `yaml:"append_query"`
}
