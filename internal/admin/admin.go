// Package admin serves the read-only admin API and Prometheus metrics on a listener of its
// own, apart from client traffic. It renders views of a running gateway that it gets through
// [Source], so it never imports the gateway; net/http is fine here since this is not the
// data path. docs/admin-api.md documents every endpoint.
//
// With an API key configured, every request must carry it as "Authorization: Bearer <key>"
// or "X-API-Key: <key>" (except the two health probes and the dashboard's static files under
// /ui/, which hold no data); keys are compared in constant time. Config validation refuses a
// non-loopback admin address without a key, and there is no default key.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h2pool"
)

// Source is the read-only view of a running gateway the admin API renders. Implementations
// must be safe for concurrent use and must not block on a config reload in progress; each
// call reflects the config serving at the time of the call.
type Source interface {
	// Status returns the process and config state.
	Status() Status
	// Targets returns the targets of upstream id with their pool state, or false when the
	// serving config has no such upstream.
	Targets(id string) ([]Target, bool)
	// Tunnels returns the open tunnels (WebSocket and other upgraded connections).
	Tunnels() []Tunnel
}

// Tunnel is an open tunnel, for /admin/tunnels.
type Tunnel struct {
	Route     string    `json:"route"`
	Protocol  string    `json:"protocol"`
	Client    string    `json:"client"`
	Target    string    `json:"target"`
	Opened    time.Time `json:"opened"`
	AgeMS     int64     `json:"age_ms"`
	BytesUp   int64     `json:"bytes_up"`
	BytesDown int64     `json:"bytes_down"`
	RequestID string    `json:"request_id"`
}

// Status is the process and config state for /admin/status and /admin/config.
type Status struct {
	Version string    // build version of the binary
	Started time.Time // process (gateway) start
	// Config is the serving config, defaults applied. Read only: it is shared.
	Config *config.Config
	// Generation is when the serving config was built into the running gateway.
	Generation time.Time
	Listeners  []Listener
	// Cluster is the cluster mode's state (writes.go); nil in file mode.
	Cluster any
}

// Listener is a client-facing listener: its configured and its bound address.
type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Bound   string `json:"bound"`
}

// Target is one upstream target and its pool.
type Target struct {
	Address  string
	Weight   int
	InFlight int64
	// Health is the target's state (healthy, unhealthy, ejected, unknown) and why.
	Health       string
	HealthReason string
	HealthSince  time.Time
	// ConsecutiveFailures counts failed attempts in a row (passive checking).
	ConsecutiveFailures int64
	// Ejections counts passive ejections since the target was created; EjectedUntil is when
	// the current one ends (zero when not ejected).
	Ejections    int64
	EjectedUntil time.Time
	Pool         connpool.Snapshot
	// H2 is the target's HTTP/2 pool (protocol h2, h2c); nil for HTTP/1.1.
	H2 *h2pool.Snapshot
}

// Server serves the admin API and /metrics on one listener.
type Server struct {
	ln      net.Listener
	http    *http.Server
	traffic *traffic                          // nil unless the Source is a [Dashboard]
	key     atomic.Pointer[[sha256.Size]byte] // SHA-256 of the API key; nil: no key required
}

// Listen binds addr and returns a Server that answers from src, with metrics on /metrics.
// apiKey "" means no key is required. Call [Server.Serve] to start answering.
func Listen(addr, apiKey string, src Source, metrics http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln}
	s.SetAPIKey(apiKey)
	if d, ok := src.(Dashboard); ok {
		s.traffic = newTraffic(d.Totals)
		go s.traffic.run(trafficInterval)
	}
	mux := routes(src, metrics, ln.Addr().String())
	handleDashboard(mux, src, s.traffic, newTimelines()) // dashboard.go
	s.http = &http.Server{
		Handler:           s.authorize(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until Close; it then returns nil.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the listener and closes every admin connection at once. It does not wait for
// running handlers, so it is safe to call while a handler waits on the caller.
//
// It closes the listener itself too: http.Server.Close only closes the listeners its Serve
// already tracks, and Serve runs on a goroutine that may not have got that far, which left
// the port accepting connections after Close (issue #14). A Serve that starts after Close
// returns at once.
func (s *Server) Close() error {
	if s.traffic != nil {
		s.traffic.close()
	}
	err := s.http.Close()
	if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) {
		err = errors.Join(err, lerr)
	}
	return err
}

// SetAPIKey replaces the key required from now on ("" requires none).
func (s *Server) SetAPIKey(key string) {
	if key == "" {
		s.key.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(key))
	s.key.Store(&sum)
}

// authorize refuses requests without the API key. Both sides are hashed first so the
// constant-time compare does not leak the key's length either.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.key.Load()
		if want == nil || isProbe(r.URL.Path) || isUI(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := presentedKey(r)
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"this admin API requires a key: send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func presentedKey(r *http.Request) (string, bool) {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k, true
	}
	scheme, k, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(k), true
	}
	return "", false
}
