// Package plugin is Sluice's filter-chain model: compiled-in plugins, built per config, run
// per request in fixed phases. docs/plugins.md is the user's side; this is the author's.
//
// # Writing a plugin
//
// One package per plugin, internal/plugin/<name>, importing only plugin, reason and config
// of Sluice's packages. Its init calls [Register] with a [Kind]:
//
//	func init() {
//		plugin.Register(plugin.Kind{Name: "key-auth", Stage: plugin.StageAuth,
//			New: New, Credential: decodeCredential})
//	}
//
// and internal/plugin/all imports the package (the one list of built-ins).
//
// New gets a [*Build]: it decodes its config strictly with b.Decode (unknown keys and wrong
// types are errors naming file:line, route, plugin and field), checks values and reports
// with b.Errorf(field, ...), and returns an instance. [CheckField] vets a header field a
// config sets; b.Path resolves a file name against the config file's directory. The instance is built once per place
// it is written (global plugins:, an upstream's, a route's) and shared by all requests of
// the routes it covers, concurrently: it must be immutable after New, except for its own
// synchronised state (counters). Credentials of consumers are decoded once per config by
// Kind.Credential and read back with [Consumer.Credential].
//
// # Phases
//
// An instance implements any of the phase interfaces; the chain finds them by type
// assertion when it is built:
//
//   - [RequestFilter]: after routing, before any upstream is contacted. Ordered by [Stage]
//     (access, preflight, auth, authorize, limit, transform), then by config order:
//     global, upstream, route, each as written. No numeric priorities.
//   - [UpstreamFilter]: per attempt, adds header fields to the upstream request.
//   - [ResponseFilter]: edits the upstream's response head before the client gets it.
//   - [ResponseBodyFilter]: says in the response headers phase whether it changes this
//     response's body (BodyStart), then rewrites it read by read as it streams (Body).
//     When no body filter takes a response, the relay is untouched (splice, 0 allocations).
//   - [LogFilter]: after the response, for every request that reached the chain.
//
// # Answering
//
// A RequestFilter returns nil (go on), a *reason.Error (the request stops; the gateway's
// one error path renders it with its reason code, plus the fields the filter added with
// [Request.AddResponseField], e.g. WWW-Authenticate or Retry-After), or the result of
// [Request.Answer] after it decided to answer locally without a body (a preflight's 204).
// Keep the *reason.Error values in the instance (built in New): returning one then costs
// no allocation. An auth filter that finds none of its credentials returns
// [Request.NoCredentials](its 401): the next auth filter gets a chance, and the request
// stops with the first such 401 only if no auth filter identifies a consumer.
//
// # Per-request state
//
// Each instance owns one [Slot] (b.Slot()), an index into the request's fixed array of
// [SlotValue]: r.Slot(s).N (an int64) and r.Slot(s).V (any; store pointers). No maps, no
// allocation. Slots are zeroed for every request.
//
// Headers are views: r.Header() is the request's own *Header, whose Get returns a slice
// of the codec's buffer (valid during the request). Compare with string(v) == s (no
// allocation), never keep a view.
//
// # The Request, in one list
//
//   - Read: Context, Method, Host, Path, Query, QueryParam(name), Header (the *Header to
//     read and edit), TLS, ClientIP (netip.Addr: the real client), RouteID, Consumer,
//     ClientGone (for a filter that waits: polled, as the proxy does).
//   - Write: SetConsumer, Slot(s) (your per-request state), RemoveQueryParam(name),
//     AddResponseField(name, value) / AddResponseFieldBytes (on whatever response goes
//     out: the upstream's, an error, a local answer).
//   - Decide: return nil, a *reason.Error, r.Answer(status, code), or (auth stage)
//     r.NoCredentials(err, challenge).
//
// Per attempt, an UpstreamFilter adds fields to the *Header it is given (X-Consumer-Name is
// added by the chain itself). A ResponseFilter edits the upstream's head; the fields added
// with AddResponseField are appended after it.
//
// # Blocking
//
// The request phase runs on the client connection's goroutine. A filter may block it (a
// Redis call, an auth service) only under a deadline derived from r.Context(), which is
// canceled when the client leaves or the gateway stops.
//
// # Consumers
//
// Config consumers[] become [*Consumer] values (name, groups, labels, credentials by plugin).
// An auth filter identifies one with [Request.SetConsumer]; later filters read
// [Request.Consumer] (rate limits key on it); the access log writes its name ("consumer")
// and it goes upstream as X-Consumer-Name.
//
// # Wiring
//
// The gateway builds a [Set] per config generation with [New] (a failure keeps the old
// config serving), takes the route's [Chain] with Set.Chain(routeIndex), and per request:
// Request.Begin, RunRequest (true: answered, skip the proxy), the proxy with
// Request.Hooks (the per-attempt and response-head phases), RunLog (deferred: it runs even
// after a panic), End. The Request is pooled with the gateway's per-request state. The real
// client IP is found before routing (internal/realip, the listener's trusted_proxies).
//
// # Tests and benchmarks to extend
//
// internal/gateway/pluginhelpers_test.go has startGatewayLogged (the process log captured,
// to prove credentials stay out of it), send and pluginAnswers. pluginbench_test.go's
// pluginBenchRows feed TestPluginChainAllocatesNothing (0 allocations per proxied request),
// BenchmarkPlugins and BenchmarkPluginsInterleaved (each row against plain, alternating);
// BenchmarkChain in this package measures a chain without the network.
package plugin
