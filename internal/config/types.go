package config

// Config is the whole declarative configuration of one gateway process.
// It is plain data: packages build their runtime parts from it.
type Config struct {
	// Listeners are the client-facing addresses. At least one is required.
	Listeners []Listener `yaml:"listeners"`
	// Upstreams are the named backend groups that routes forward to.
	Upstreams []Upstream `yaml:"upstreams"`
	// Routes map requests to upstreams. Order matters only as the last tie-breaker
	// of the precedence rules in docs/config.md. Configs derived from one another (cluster
	// mode's changes) share the routes they did not change, so a Route of a config that
	// was handed on is never modified: each config builds its own.
	Routes []*Route `yaml:"routes"`
	// Log configures the process log and the access log.
	Log Log `yaml:"log"`
	// Admin is the separate listener for metrics and the read-only admin API.
	Admin Admin `yaml:"admin"`
	// Errors configures the responses the gateway itself generates.
	Errors Errors `yaml:"errors"`
	// ShutdownGrace bounds how long SIGTERM waits for in-flight requests.
	// Default 30s; 0 means "do not wait" (in-flight requests are cut at once).
	ShutdownGrace *Duration `yaml:"shutdown_grace"`
	// Cluster, when set, takes routes, upstreams and shared settings from etcd (cluster.go,
	// docs/cluster.md). Omitted: file mode.
	Cluster *Cluster `yaml:"cluster"`
	// Plugins run on every route, before the upstream's and the route's own (docs/plugins.md).
	// Omitted: none.
	Plugins []Plugin `yaml:"plugins"`
	// Consumers are the named API clients that auth plugins identify (docs/plugins.md).
	// Omitted: none.
	Consumers []Consumer `yaml:"consumers"`
	// Tracing exports OpenTelemetry spans of sampled requests (tracing.go, docs/tracing.md).
	// Omitted: off.
	Tracing *Tracing `yaml:"tracing"`

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
	// TCPKeepalive is the TCP keep-alive of client connections: how long a connection may
	// carry nothing before the kernel probes the client, and the interval between probes (9
	// unanswered probes drop it), in whole seconds up to 32767s. It finds clients that
	// vanished without a FIN or reset (under a long idle tunnel, say). Default 15s; 0s turns
	// keep-alive off (nginx's default). A reload applies it to connections accepted afterwards.
	TCPKeepalive *Duration `yaml:"tcp_keepalive"`
	// MaxHeaderBytes bounds the request line plus all headers. Default 65536 (64 KiB);
	// 0 is invalid.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeaders bounds the number of request header fields. Default 100; 0 is invalid.
	MaxHeaders int `yaml:"max_headers"`
	// MaxBodyBytes bounds request bodies (413 above it). Default 0: unlimited. Routes can lower it.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// UnderscoresInHeaders is what becomes of request header (and trailer) fields whose name
	// holds "_": valid tokens, but CGI-style backends read "_" as "-", so X_Forwarded_For
	// would pass there for the gateway's X-Forwarded-For. "drop" (default) removes them,
	// "allow" forwards them, "reject" answers 400 underscore_in_header (trailers, which come
	// after the request was forwarded, are dropped). Omitted: "drop".
	UnderscoresInHeaders string `yaml:"underscores_in_headers"`
	// TLS, when set, terminates TLS (HTTPS) on this listener. See docs/tls.md.
	TLS *ListenerTLS `yaml:"tls"`
	// RedirectHTTPS, when set, answers every request on this (plain HTTP) listener with a
	// permanent redirect to the same host and path over HTTPS (308, so methods and bodies
	// are kept). See docs/tls.md.
	RedirectHTTPS *RedirectHTTPS `yaml:"redirect_https"`
	// Protocols are the HTTP versions served: "http1" (HTTP/1.0 and 1.1; required), "h2"
	// (HTTP/2 over TLS, offered by ALPN; needs tls) and "h2c" (HTTP/2 over plain TCP with
	// prior knowledge; no tls). Omitted: [http1]. See docs/http2.md.
	Protocols []string `yaml:"protocols"`
	// HTTP2 are the HTTP/2 limits of the listener, used when protocols has h2 or h2c.
	// Omitted: the defaults of each field.
	HTTP2 HTTP2 `yaml:"http2"`
	// TrustedProxies are the CIDRs ("10.0.0.0/8", "2001:db8::/32", or one address) of the
	// proxies in front of this listener. Only a peer in them is believed about the client:
	// its X-Forwarded-For or PROXY protocol header. Omitted: none (the peer is the client,
	// and a client's own X-Forwarded-For is not forwarded). See docs/plugins.md#real-client-ip.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol makes connections from trusted proxies start with a PROXY protocol
	// header (v1 text or v2 binary), which names the client. Requires trusted_proxies.
	// Default false.
	ProxyProtocol bool `yaml:"proxy_protocol"`
}

// RedirectHTTPS is a listener's HTTP-to-HTTPS redirect.
type RedirectHTTPS struct {
	// Port is the HTTPS port written into the Location; 443 (the default) is left out.
	Port int `yaml:"port"`
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
	// Balancer chooses the target of each attempt.
	Balancer Balancer `yaml:"balancer"`
	// HealthCheck configures active and passive health checking of the targets.
	HealthCheck HealthCheck `yaml:"health_check"`
	// Limits are the upstream's circuit breakers.
	Limits Limits `yaml:"limits"`
	// Retry is the retry policy of routes using this upstream (a route may override it).
	Retry Retry `yaml:"retry"`
	// Discovery configures how targets given as names (a host name in address, or srv) are
	// resolved and re-resolved. Omitted: the system's resolver and the default TTL bounds.
	// See docs/discovery.md.
	Discovery Discovery `yaml:"discovery"`
	// TLS makes the connections to the targets TLS (HTTPS). Omitted: plain TCP, unless a
	// target address starts with https://, which creates it with its defaults. See
	// docs/tls.md#upstream-tls.
	TLS *UpstreamTLS `yaml:"tls"`
	// Plugins run on every route of this upstream, after the global ones and before the
	// route's own (docs/plugins.md). Omitted: none.
	Plugins []Plugin `yaml:"plugins"`
	// Protocol is how the gateway speaks to the targets: "http1" (the default), "h2"
	// (HTTP/2 over TLS, ALPN h2), "h2c" (HTTP/2 over plain TCP, prior knowledge) or "auto"
	// (TLS; ALPN decides between h2 and http/1.1). See docs/http2.md.
	Protocol string `yaml:"protocol"`
	// H2 tunes the HTTP/2 connections (protocol h2, h2c, auto).
	H2 UpstreamH2 `yaml:"h2"`
}

// Discovery configures DNS resolution of an upstream's named targets.
type Discovery struct {
	// Resolver is the DNS server asked, "ip:port" or "ip" (port 53). Default "": the first
	// nameserver of /etc/resolv.conf, read when the config is applied. Names listed in
	// /etc/hosts are answered from it whatever this says.
	Resolver string `yaml:"resolver"`
	// MinTTL is the least time between two resolutions of a name, whatever the records'
	// TTL, and the retry interval after a failed resolution. Default 1s; 0 is invalid.
	MinTTL *Duration `yaml:"min_ttl"`
	// MaxTTL is the most time between two resolutions of a name, whatever the records' TTL.
	// Default 300s; must be at least MinTTL.
	MaxTTL *Duration `yaml:"max_ttl"`
	// Timeout bounds one DNS query (UDP, and TCP when the answer was truncated).
	// Default 2s; 0 is invalid.
	Timeout *Duration `yaml:"timeout"`
}

// Balancer selects the load-balancing policy of an upstream.
type Balancer struct {
	// Policy: "round_robin" (default: smooth weighted round robin), "least_request" (power of
	// two choices on in-flight requests), "ewma" (peak-EWMA latency), or "hash" (consistent
	// hashing on HashOn).
	Policy string `yaml:"policy"`
	// HashOn is the hash key for policy "hash": "header", "cookie", "query" (each with
	// HashKey naming it), "client_ip" or "uri". Required with "hash", invalid otherwise.
	HashOn string `yaml:"hash_on"`
	// HashKey names the header, cookie or query argument for HashOn.
	HashKey string `yaml:"hash_key"`
	// SlowStart ramps a target that joins or recovers from a small share up to its full
	// weight over this window. Default 0: off.
	SlowStart Duration `yaml:"slow_start"`
}

// HealthCheck configures target health. Omitted blocks are off.
type HealthCheck struct {
	// Active probes each target periodically. nil: no active checks.
	Active *ActiveCheck `yaml:"active"`
	// Passive ejects targets that fail real requests (outlier detection). Omitted: on, with
	// the defaults below except that the backend's own 5xx answers do not count (like
	// nginx's max_fails); write enabled: false to turn it off.
	Passive *PassiveCheck `yaml:"passive"`
	// PanicThreshold: when the share of healthy targets falls below it, balance across all
	// targets rather than fail everything. Default 0.5; 0 disables panic mode.
	PanicThreshold *float64 `yaml:"panic_threshold"`
}

// ActiveCheck is a periodic probe of every target.
type ActiveCheck struct {
	// Type: "http" (default), "tcp" (connect only) or "grpc" (grpc.health.v1 Check; needs
	// protocol h2, h2c or auto).
	Type string `yaml:"type"`
	// Service is the service name a grpc check asks grpc.health.v1 about, such as
	// "helloworld.Greeter": NOT_SERVING, or a service the server does not know, makes the
	// target unhealthy. Default "": the server as a whole. Only with type grpc.
	Service string `yaml:"service"`
	// Path requested by HTTP checks. Default "/".
	Path string `yaml:"path"`
	// Host is the Host header of HTTP checks and the :authority of grpc checks, for
	// backends that route by it (virtual hosts, a mesh sidecar). Default: the target
	// address. Not valid with type tcp.
	Host string `yaml:"host"`
	// ExpectedStatuses are the statuses that count as healthy. Default: 200-399.
	ExpectedStatuses []int `yaml:"expected_statuses"`
	// BodyContains, if set, must appear in the first 64 KiB of the response body.
	BodyContains string `yaml:"body_contains"`
	// Interval between probes of one target. Default 10s.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe. Default 2s.
	Timeout Duration `yaml:"timeout"`
	// HealthyThreshold consecutive successes make an unhealthy target healthy. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures make a healthy target unhealthy. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// Jitter spreads probes by up to this share of Interval, so that many gateways do not
	// probe in lock-step. Default 0.1; must be in [0, 1).
	Jitter *float64 `yaml:"jitter"`
}

// PassiveCheck ejects a target after consecutive failures of real requests. See
// [PassiveCheck.IsEnabled].
type PassiveCheck struct {
	// Enabled turns passive ejection on. Default true.
	Enabled *bool `yaml:"enabled"`
	// ConsecutiveFailures (connect failures, gateway 5xx, timeouts) that eject a target.
	// Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Count5xx also counts the backend's own 5xx responses as failures. Default true when
	// the passive block is written, false when it is omitted.
	Count5xx *bool `yaml:"count_5xx"`
	// BaseEjection is the first ejection time; each further ejection of the same target
	// multiplies it (2x, 3x, ...) up to MaxEjection. Default 30s.
	BaseEjection Duration `yaml:"base_ejection"`
	// MaxEjection caps the ejection time. Default 300s.
	MaxEjection Duration `yaml:"max_ejection"`
}

// Limits are per-upstream circuit breakers: exceeding one answers 503 at once with its
// reason code, never an unbounded queue. 0 means unlimited. Connections and queued requests
// are limited per target by keepalive.max_conns and keepalive.max_pending.
type Limits struct {
	// MaxConcurrentRequests caps requests in flight to the upstream.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxConcurrentRetries caps retries in flight to the upstream.
	MaxConcurrentRetries int `yaml:"max_concurrent_retries"`
}

// Retry is a retry policy. In a route, set fields override the upstream's.
type Retry struct {
	// Attempts is the total number of tries, the first included. Default 2; 1 turns retries
	// off (a request that provably never reached the backend is still re-sent).
	Attempts *int `yaml:"attempts"`
	// PerTryTimeout bounds each attempt's wait for the response head. Default 0: the read timeout.
	PerTryTimeout *Duration `yaml:"per_try_timeout"`
	// Deadline bounds the whole request across attempts (no new attempt starts after it).
	// Default 0: no overall deadline.
	Deadline *Duration `yaml:"deadline"`
	// BackoffBase and BackoffMax shape the exponential backoff with full jitter between
	// attempts. Defaults 25ms and 250ms.
	BackoffBase *Duration `yaml:"backoff_base"`
	BackoffMax  *Duration `yaml:"backoff_max"`
	// On lists the retried failure conditions: "connect_failure", "reset_before_request",
	// "reset_before_response", "timeout", "status". Default: connect_failure,
	// reset_before_request, reset_before_response.
	On []string `yaml:"on"`
	// Statuses are the backend response statuses retried when On has "status".
	// Default [502, 503, 504].
	Statuses []int `yaml:"statuses"`
	// NonIdempotent allows retrying POST, PATCH and other non-idempotent requests after a
	// failure where the backend may have processed them. Default false.
	NonIdempotent *bool `yaml:"non_idempotent"`
	// IdempotencyHeader names a header whose presence makes any request retryable like an
	// idempotent one. Default "Idempotency-Key"; "" disables.
	IdempotencyHeader *string `yaml:"idempotency_header"`
	// BudgetPercent: retries may add at most this percentage to the upstream's request rate
	// (over a 10s window). Default 20.
	BudgetPercent *float64 `yaml:"budget_percent"`
	// BudgetMinPerSecond always allows this many retries per second. Default 3.
	BudgetMinPerSecond *float64 `yaml:"budget_min_per_second"`
	// BufferBody is how many bytes of a request body are held so it can be re-sent.
	// Default 65536. Larger bodies are retryable only while none of them was sent.
	BufferBody *int64 `yaml:"buffer_body"`
}

// Errors configures gateway-generated error responses. Every such response carries its
// reason code (X-Sluice-Error header and JSON body) whatever this says.
type Errors struct {
	// ExposeDetails adds the internal cause ("detail") to error bodies. Default false: clients
	// see the reason code and a generic message; the access log always has the details.
	ExposeDetails bool `yaml:"expose_details"`
}

// Admin is the admin listener: Prometheus metrics and the read-only admin API.
type Admin struct {
	// Enabled turns the admin listener on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Address to listen on. Default "127.0.0.1:9180". A non-loopback address requires APIKey.
	Address string `yaml:"address"`
	// APIKey, when set, is required on every admin request as "Authorization: Bearer <key>"
	// or "X-API-Key: <key>". There is no default key.
	APIKey string `yaml:"api_key"`
}

// Target is one backend address, or a name that resolves to several (docs/discovery.md).
type Target struct {
	// Address is host:port of the backend. A host name (not an IP address) is resolved
	// through DNS (A and AAAA) and each address becomes a target, re-resolved on the records'
	// TTL. Required unless SRV is set. It may start with "https://" (TLS to the upstream; the
	// port defaults to 443) or "http://" (port 80); all targets of an upstream must agree.
	Address string `yaml:"address"`
	// SRV is a DNS SRV name, such as "_http._tcp.api.internal", whose records give the
	// targets: each record's host resolved to addresses, with the record's port, and the
	// record's weight times Weight. Default "": none. Exactly one of Address and SRV.
	SRV string `yaml:"srv"`
	// Weight is the share of requests for smooth weighted round robin. Default 1; 0 is invalid
	// (remove the target instead).
	Weight int `yaml:"weight"`

	// Scheme is the scheme Address was written with, "http", "https" or "" (none); Load
	// strips it from Address. Not YAML.
	Scheme string `yaml:"-"`
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
	// MaxRequests retires a connection after this many requests (HTTP/2: streams; it takes
	// no new ones, its streams finish, a replacement is dialed ahead). Default 0: unlimited.
	MaxRequests int `yaml:"max_requests"`
	// MaxLifetime retires a connection this long after it was opened (HTTP/2 as for
	// MaxRequests). Default 0: unlimited.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// Learn enables learning each target's idle timeout (Keep-Alive header, observed closes,
	// failures). Default true.
	Learn *bool `yaml:"learn"`
	// SafetyFraction is the share of a learned backend idle timeout that Sluice uses.
	// Default 0.85; must be in (0, 1).
	SafetyFraction *float64 `yaml:"safety_fraction"`
	// UnsafeMaxIdle is the longest idle age of a reused connection that a non-idempotent
	// request (POST, PATCH, ...) may be written on. Default 500ms, well below the idle timeout
	// of common backend servers (gunicorn 2s, Node.js and Apache 5s), so that such requests
	// are safe before anything is learned. 0 means such requests always get a fresh connection.
	// Once the target's closes have been observed well enough (docs/design.md, "Confidence in
	// the learned timeout"), such requests may reuse connections up to the observed close age
	// minus its margins instead; UnsafeMaxIdle still bounds them before that, and 0 still
	// means never.
	UnsafeMaxIdle *Duration `yaml:"unsafe_max_idle"`
	// Preconnect opens a replacement connection in the background when the youngest idle
	// connection of a target with recent traffic is about to be retired, so that the next
	// request does not wait for a connect. At most one at a time and one per half idle
	// timeout. Default true; false: connects happen only when a request needs one.
	Preconnect *bool `yaml:"preconnect"`
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
	// Upstream is the ID of the upstream to forward to. Required, unless Split is set
	// (then it must be omitted).
	Upstream string `yaml:"upstream"`
	// Split sends the route's requests to several upstreams by weight, rule or sticky key
	// (split.go, docs/traffic.md). Omitted: all go to Upstream.
	Split *Split `yaml:"split"`
	// Mirror copies a share of the route's requests to another upstream, fire and forget
	// (split.go, docs/traffic.md). Omitted: none.
	Mirror *Mirror `yaml:"mirror"`
	// Timeouts override the upstream's timeouts for this route.
	Timeouts Timeouts `yaml:"timeouts"`
	// MaxBodyBytes lowers the listener's request body limit for this route. 0: inherit.
	// A value above the listener's limit has no effect.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Rewrite changes the request before it is forwarded.
	Rewrite Rewrite `yaml:"rewrite"`
	// Retry overrides fields of the upstream's retry policy for this route.
	Retry Retry `yaml:"retry"`
	// Tunnel is the route's policy for protocol upgrades (WebSocket). See docs/websocket.md.
	Tunnel Tunnel `yaml:"tunnel"`
	// GRPCWeb translates grpc-web requests (content-type application/grpc-web and
	// application/grpc-web-text, base64) into gRPC over HTTP/2 to the upstream, and the
	// answers back, trailers as a final length-prefixed frame (docs/http2.md#grpc-web).
	// Needs an upstream with protocol h2, h2c or auto. Default false: grpc-web requests go
	// upstream as they are.
	GRPCWeb bool `yaml:"grpc_web"`
	// Plugins run on this route, after the global and the upstream's ones (docs/plugins.md).
	// Omitted: none.
	Plugins []Plugin `yaml:"plugins"`
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
	// TLS are conditions on the client connection's TLS session; all must hold. Names:
	// "sni" (the server name the client asked for, in lower case; Load lower-cases an exact
	// value), "client_cert_subject" (the verified client certificate's subject, as
	// "CN=svc,O=Example"), "version" ("TLS 1.3"). Over plain HTTP each is absent. See
	// docs/tls.md.
	TLS []ValueMatch `yaml:"tls"`
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
	// A file is created if missing and appended to; it is reopened on SIGUSR1 and on reload.
	Access string `yaml:"access"`
	// AccessQuery adds the request's query string to access log lines as "query". Default
	// false: query strings can carry secrets (tokens, keys), and logs travel further than
	// requests.
	AccessQuery bool `yaml:"access_query"`
	// AccessFields are the only fields access log lines carry, by name (docs/config.md lists
	// them); they keep the line's order whatever the order here. Omitted: every field (the
	// default line). "query" also needs AccessQuery. At most one of AccessFields and
	// AccessExcludeFields.
	AccessFields []string `yaml:"access_fields"`
	// AccessExcludeFields are fields left out of the default line, by name. Omitted or empty:
	// none.
	AccessExcludeFields []string `yaml:"access_exclude_fields"`
}
