package config

// Config is the whole declarative configuration of one gateway process.
// It is plain data: packages build their runtime parts from it.
type Config struct {
	// Listeners are the client-facing addresses. At least one is required.
	Listeners []Listener `yaml:"listeners"`
	// Upstreams are the named backend groups that routes forward to.
	Upstreams []Upstream `yaml:"upstreams"`
	// Routes map requests to upstreams. Order matters only as the last tie-breaker
	// of the precedence rules in docs/config.md.
	Routes []Route `yaml:"routes"`
	// Log configures the process log and the access log.
	Log Log `yaml:"log"`
	// ShutdownGrace bounds how long SIGTERM waits for in-flight requests.
	// Default 30s; 0 means "do not wait" (in-flight requests are cut at once).
	ShutdownGrace *Duration `yaml:"shutdown_grace"`

	// File is the path the config was loaded from ("embedded:default.yaml" for the embedded
	// default, "" for a Config built in code). Not YAML.
	File string `yaml:"-"`
	// Hash is a hex SHA-256 of the raw bytes, used as the config version. Not YAML.
	Hash string `yaml:"-"`
}

// Listener is one client-facing HTTP/1.1 listener.
type Listener struct {
	// Name identifies the listener in logs. Default: the address.
	Name string `yaml:"name"`
	// Address is host:port to listen on, e.g. "127.0.0.1:8080" or ":8080". Required.
	Address string `yaml:"address"`
	// ReadHeaderTimeout bounds reading the request line and headers. Default 10s; 0 is invalid.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds each read of the request body (an idle gap, not the whole body).
	// Default 60s; 0 is invalid.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write to the client (an idle gap, not the whole response).
	// Default 60s; 0 is invalid.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes a client keep-alive connection idle this long. Default 60s;
	// 0 is invalid (use a small value to close quickly).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line plus all headers. Default 65536 (64 KiB);
	// 0 is invalid.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeaders bounds the number of request header fields. Default 100; 0 is invalid.
	MaxHeaders int `yaml:"max_headers"`
	// MaxBodyBytes bounds request bodies (413 above it). Default 0: unlimited. Routes can lower it.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Upstream is a named group of backend targets and the policy for talking to them.
type Upstream struct {
	// ID names the upstream; routes refer to it. Required, unique.
	ID string `yaml:"id"`
	// Targets are the backend addresses. At least one is required.
	Targets []Target `yaml:"targets"`
	// Keepalive is the per-upstream connection pool policy.
	Keepalive Keepalive `yaml:"keepalive"`
	// Timeouts are the default upstream timeouts of routes using this upstream.
	Timeouts Timeouts `yaml:"timeouts"`
}

// Target is one backend address.
type Target struct {
	// Address is host:port of the backend. Required.
	Address string `yaml:"address"`
	// Weight is the share of requests for smooth weighted round robin. Default 1; 0 is invalid
	// (remove the target instead).
	Weight int `yaml:"weight"`
}

// Keepalive is the upstream connection reuse policy. See docs/config.md for what 0 and
// omitted mean for each field.
type Keepalive struct {
	// Enabled turns connection reuse on. Default true. false means one connection per
	// request and "Connection: close" on every upstream request.
	Enabled *bool `yaml:"enabled"`
	// IdleTimeout is the longest a connection may sit idle in the pool before Sluice closes it.
	// Default 60s. 0 is invalid: write enabled: false to turn reuse off.
	IdleTimeout *Duration `yaml:"idle_timeout"`
	// MaxIdle is the most idle connections kept per target. Default 64. 0 is invalid.
	MaxIdle *int `yaml:"max_idle"`
	// MaxConns caps connections (idle + in use) per target; requests above it wait in a queue.
	// Default 0: unlimited.
	MaxConns int `yaml:"max_conns"`
	// MaxPending caps requests waiting for a connection per target when MaxConns is reached;
	// more get 503 pool_queue_full. Default 1024. 0 means no queue: such requests get 503 at once.
	MaxPending *int `yaml:"max_pending"`
	// QueueTimeout is the longest a request waits for a connection. Default 5s. 0 is invalid
	// (write max_pending: 0 to fail at once instead of waiting).
	QueueTimeout *Duration `yaml:"queue_timeout"`
	// MaxRequests retires a connection after this many requests. Default 0: unlimited.
	MaxRequests int `yaml:"max_requests"`
	// MaxLifetime retires a connection this long after it was opened. Default 0: unlimited.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// Learn enables learning each target's idle timeout (Keep-Alive header, observed closes,
	// failures). Default true.
	Learn *bool `yaml:"learn"`
	// SafetyFraction is the share of a learned backend idle timeout that Sluice uses.
	// Default 0.85; must be in (0, 1).
	SafetyFraction *float64 `yaml:"safety_fraction"`
	// UnsafeMaxIdle is the longest idle age of a reused connection that a non-idempotent
	// request (POST, PATCH, ...) may be written on. Default 1s, below the idle timeout of
	// common backend servers (gunicorn 2s, Node.js and Apache 5s), so that such requests are
	// safe before anything is learned. 0 means such requests always get a fresh connection.
	UnsafeMaxIdle *Duration `yaml:"unsafe_max_idle"`
}

// Timeouts are upstream timeouts. Omitted fields inherit (route <- upstream <- defaults);
// an explicit 0 is invalid (omit the field to inherit). Use [Route.EffectiveTimeouts].
type Timeouts struct {
	// Connect bounds dialing a target. Default 5s. Exceeding it gives 504 upstream_connect_timeout.
	Connect Duration `yaml:"connect"`
	// Read bounds waiting for the response head and each gap between response body reads.
	// Default 60s. Exceeding it gives 504 upstream_timeout.
	Read Duration `yaml:"read"`
	// Write bounds each write of the request to the target. Default 60s.
	Write Duration `yaml:"write"`
}

// Route maps matching requests to an upstream.
type Route struct {
	// ID names the route in logs and metrics. Required, unique.
	ID string `yaml:"id"`
	// Priority: a higher value wins over any lower one before specificity is considered. Default 0.
	Priority int `yaml:"priority"`
	// Match selects requests. An empty match matches every request.
	Match Match `yaml:"match"`
	// Upstream is the ID of the upstream to forward to. Required.
	Upstream string `yaml:"upstream"`
	// Timeouts override the upstream's timeouts for this route.
	Timeouts Timeouts `yaml:"timeouts"`
	// MaxBodyBytes lowers the listener's request body limit for this route. 0: inherit.
	// A value above the listener's limit has no effect.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Rewrite changes the request before it is forwarded.
	Rewrite Rewrite `yaml:"rewrite"`
}

// Match is the request predicate of a route. All given conditions must hold.
type Match struct {
	// Hosts are exact host names ("api.example.com") or wildcards ("*.example.com", which matches
	// any name ending in ".example.com" but not "example.com" itself). Empty: any host.
	// Compared case-insensitively, without the port; Load lowercases them.
	Hosts []string `yaml:"hosts"`
	// Path is an exact path ("/healthz") or a template with named segments ("/users/{id}/orders";
	// a final "{name...}" matches the rest of the path). At most one of Path, PathPrefix, PathRegex.
	Path string `yaml:"path"`
	// PathPrefix matches paths that start with it, at a segment boundary when it ends in "/"
	// or equals the whole path.
	PathPrefix string `yaml:"path_prefix"`
	// PathRegex is an RE2 regular expression matched against the path (unanchored unless it says so).
	PathRegex string `yaml:"path_regex"`
	// Methods restricts the HTTP methods. Empty: any method. Load upper-cases them.
	Methods []string `yaml:"methods"`
	// Headers are request header conditions; all must hold.
	Headers []ValueMatch `yaml:"headers"`
	// Query are query argument conditions; all must hold.
	Query []ValueMatch `yaml:"query"`
}

// ValueMatch is a condition on a named header or query argument. Exactly one of Exact,
// Regex, Present must be set.
type ValueMatch struct {
	// Name of the header (case-insensitive) or query argument (case-sensitive). Required.
	Name string `yaml:"name"`
	// Exact requires this exact value.
	Exact *string `yaml:"exact"`
	// Regex requires the value to match this RE2 expression.
	Regex string `yaml:"regex"`
	// Present requires the header/argument to be present (true) or absent (false).
	Present *bool `yaml:"present"`
}

// Rewrite describes changes made to a request before it is forwarded.
type Rewrite struct {
	// StripPrefix removes this prefix from the path when present ("/api" turns "/api/x" into "/x";
	// an emptied path becomes "/").
	StripPrefix string `yaml:"strip_prefix"`
	// AddPrefix prepends this to the path after StripPrefix (together: replace a prefix).
	AddPrefix string `yaml:"add_prefix"`
	// PathRegex and PathReplacement rewrite the path with an RE2 expression; the replacement
	// may use $1 or ${name}. Applied after the prefix rules. Both or neither.
	PathRegex       string `yaml:"path_regex"`
	PathReplacement string `yaml:"path_replacement"`
	// Host selects the Host header sent upstream: "client" (default: the client's Host),
	// "target" (the target's address), or "fixed" (the value of HostValue).
	Host string `yaml:"host"`
	// HostValue is the Host sent when Host is "fixed".
	HostValue string `yaml:"host_value"`
	// SetHeaders sets request headers (replacing any present).
	SetHeaders map[string]string `yaml:"set_headers"`
	// AddHeaders appends request headers.
	AddHeaders map[string]string `yaml:"add_headers"`
	// RemoveHeaders deletes request headers.
	RemoveHeaders []string `yaml:"remove_headers"`
}

// Log configures logging.
type Log struct {
	// Level of the process log: debug, info, warn, error. Default info.
	Level string `yaml:"level"`
	// Access is where the JSON access log goes: "stdout" (default), "stderr", "off", or a file path.
	Access string `yaml:"access"`
}
