package plugin

import (
	"fmt"
	"sort"
	"sync"

	"sluice/internal/config"
	"sluice/internal/h1"
)

// Header is a request or response header section: an ordered list of fields whose names and
// values are views over the codec's buffers, valid until the request ends. Get returns a view
// (no copy); Add and Set copy into the header's own buffer; Del removes every field of a
// name. Plugins use it through this alias and never import the codec.
type Header = h1.Header

// EqualFold reports whether b and s are equal under ASCII case folding, as field names and
// tokens compare (h1.EqualFold, for plugins, which do not import the codec).
func EqualFold(b []byte, s string) bool { return h1.EqualFold(b, s) }

// IsToken reports whether s is a non-empty RFC 9110 token, such as a field name a plugin's
// config gives (h1.IsToken).
func IsToken(s string) bool { return h1.IsToken(s) }

// Field is one header field of a [Header].
type Field = h1.Field

// Stage orders the request phase. The stages run in this order; within a stage, filters run
// in the config's order: the global plugins, then the upstream's, then the route's, each list
// as written. There are no numeric priorities.
type Stage uint8

// Stages of the request phase, in the order they run.
const (
	// StageAccess: allow or deny by the real client IP (ip-restriction).
	StageAccess Stage = 1 + iota
	// StagePreflight: answer CORS preflights, before any credentials are asked for
	// (Kong/kong#1292: auth plugins must not reject a credential-less OPTIONS preflight).
	StagePreflight
	// StageAuth: identify the consumer (key-auth, basic-auth, jwt-auth, forward-auth). A
	// request passes the stage when any one auth filter identifies a consumer; see
	// [Request.NoCredentials].
	StageAuth
	// StageAuthorize: decide on the identified consumer (consumer-restriction).
	StageAuthorize
	// StageLimit: rate and concurrency limits, which may key on the consumer.
	StageLimit
	// StageTransform: edit the request before it is forwarded.
	StageTransform
)

var stageNames = map[Stage]string{
	StageAccess: "access", StagePreflight: "preflight", StageAuth: "auth",
	StageAuthorize: "authorize", StageLimit: "limit", StageTransform: "transform",
}

func (s Stage) String() string {
	if n, ok := stageNames[s]; ok {
		return n
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// Kind is a registered plugin: its name, its stage in the request phase, and how it is built.
type Kind struct {
	// Name is what configs write in plugins[].name, such as "key-auth". Required.
	Name string
	// Stage is where its RequestFilter runs in the request phase. Required when the plugin
	// filters requests.
	Stage Stage
	// New builds one instance from its config (b.Decode) for one place (global, an upstream
	// or a route). The instance is shared by every request of every route that place covers,
	// concurrently: per-request state goes in its [Slot], never in the instance. It returns a
	// value that implements one or more of [RequestFilter], [UpstreamFilter],
	// [ResponseFilter], [LogFilter] (and [Closer] if it owns goroutines), or an error made
	// with b.Errorf or returned by b.Decode.
	New func(b *Build) (any, error)
	// Credential decodes one consumer's credentials for this plugin (the consumer's
	// credentials.<name> node), once per config. nil: the plugin takes no credentials, and a
	// consumer listing credentials for it is a config error. The value is what
	// [Consumer.Credential] returns to the plugin's instances.
	Credential func(n config.Node) (any, error)
}

// RequestFilter runs in the request phase, after routing, in its kind's [Stage]. It returns
// nil to let the request go on; a *reason.Error to stop it (rendered by the one error path,
// with the fields added by [Request.AddResponseField], such as WWW-Authenticate); or what
// [Request.Answer] returns after it answered locally (a preflight's 204). It may block the
// connection's goroutine (a Redis call, an auth service) only under a deadline derived from
// r.Context().
type RequestFilter interface {
	Request(r *Request) error
}

// UpstreamFilter runs once per attempt, when the request head to the upstream is written:
// it adds fields to h (empty at each attempt; Add copies), which follow the request's own.
// attempt counts from 0. It must not block.
type UpstreamFilter interface {
	Upstream(r *Request, h *Header, attempt int)
}

// ResponseFilter runs on the upstream's response head before it goes to the client, and may
// edit h (the fields added with [Request.AddResponseField] are appended after it). It does
// not run for the gateway's own answers (errors and local answers), which carry only the
// added fields. It must not block.
type ResponseFilter interface {
	Response(r *Request, status int, h *Header)
}

// ResponseBodyFilter is the response body phase: it sees the upstream's response body as it
// streams and may change it (bytes and length). It runs for final responses that have a
// body (never for HEAD, 1xx, 204 or 304, nor for the gateway's own answers), on every
// upstream protocol's attempt path. It must not block.
type ResponseBodyFilter interface {
	// BodyStart runs in the response headers phase, after every ResponseFilter (h is the
	// head the client will get; the filter may edit it, e.g. drop an ETag it invalidates).
	// h still has the upstream's Content-Length, when it sent one, for the filter to read;
	// the gateway removes it from what it sends and frames the body itself.
	// It returns true when the filter will change this response's body: the gateway then
	// drops the upstream's Content-Length and frames the body as of unknown length
	// (chunked for HTTP/1.1, close-delimited for HTTP/1.0), and never splices it. false:
	// Body is not called for this response; when no filter returns true the relay is
	// exactly as without the phase. Keep per-response state in r.Slot.
	BodyStart(r *Request, status int, h *Header) bool
	// Body gets the body in order, one piece p per upstream read (valid only during the
	// call; keep what must carry over, such as a partial match, in your slot's state),
	// appends its output to dst and returns it. end is true on the last call, once the
	// upstream body ended cleanly (p may be empty): append what you held back and any
	// final bytes. A body that broke off gets no end call (the client's response is cut).
	// Several filters run in config order, each one's output the next one's input.
	Body(r *Request, dst, p []byte, end bool) []byte
}

// LogFilter runs after the response was written (or the request failed), once per request
// that reached its route's chain, whatever happened, a panic included: release per-request
// resources (a concurrency slot) and note outcomes here. status is what the client got
// (499: it left; 0: nothing yet, the request panicked and is answered 502 after this).
type LogFilter interface {
	Log(r *Request, status int)
}

// Closer is implemented by plugin instances that own goroutines or connections (a JWKS
// refresher, a Redis client): Close is called once when the config generation that built
// them is retired.
type Closer interface {
	Close() error
}

var (
	regMu sync.RWMutex
	kinds = map[string]Kind{}
)

// Register makes a plugin kind available to configs. Plugin packages call it from init; the
// gateway imports them all through internal/plugin/all. It panics on a duplicate or
// incomplete kind (a programming error).
func Register(k Kind) {
	regMu.Lock()
	defer regMu.Unlock()
	if k.Name == "" || k.New == nil {
		panic("plugin: Register needs a name and New")
	}
	if _, dup := kinds[k.Name]; dup {
		panic("plugin: " + k.Name + " registered twice")
	}
	kinds[k.Name] = k
}

// Lookup returns the registered kind named name.
func Lookup(name string) (Kind, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Names returns the registered plugin names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
