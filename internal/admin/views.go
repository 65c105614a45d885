package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.yaml.in/yaml/v3"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h2pool"
)

// healthUnknown is a target's health when nothing reported one.
const healthUnknown = "unknown"

// redacted replaces secrets in rendered config.
const redacted = "<redacted>"

// routes returns the admin API's handler. adminAddr is the admin listener's bound address.
func routes(src Source, metrics http.Handler, adminAddr string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, statusView(src.Status(), adminAddr))
	})
	mux.HandleFunc("GET /admin/config", func(w http.ResponseWriter, _ *http.Request) {
		st := src.Status()
		cfg, err := configView(st.Config)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"version": st.Config.Hash, "file": st.Config.File, "config": cfg})
	})
	mux.HandleFunc("GET /admin/routes", func(w http.ResponseWriter, _ *http.Request) {
		cfg := src.Status().Config
		rs, err := generic(cfg.Routes)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"version": cfg.Hash, "routes": rs})
	})
	mux.HandleFunc("GET /admin/upstreams", func(w http.ResponseWriter, _ *http.Request) {
		cfg := src.Status().Config
		ups, err := upstreamsView(src, cfg)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"version": cfg.Hash, "upstreams": ups})
	})
	mux.HandleFunc("GET /admin/upstreams/{id}/pool", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ts, ok := src.Targets(id)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no upstream %q in the serving config", id))
			return
		}
		out := make([]poolView, len(ts))
		for i := range ts {
			out[i] = newPoolView(&ts[i])
		}
		writeJSON(w, http.StatusOK, map[string]any{"upstream": id, "targets": out})
	})
	mux.HandleFunc("GET /admin/tunnels", func(w http.ResponseWriter, _ *http.Request) {
		ts := src.Tunnels()
		if ts == nil {
			ts = []Tunnel{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"tunnels": ts})
	})
	mux.Handle("GET /metrics", metrics)
	handleProbes(mux, src) // health.go
	handleWrites(mux, src) // writes.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if methodNotAllowed(mux, r) {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s %s: the admin API is read-only; use GET", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no admin endpoint %s; see docs/admin-api.md", r.URL.Path))
	})
	return mux
}

// methodNotAllowed reports whether r's path is an endpoint that a GET would reach: the
// catch-all pattern "/" takes every method, so the mux alone would answer 404.
func methodNotAllowed(mux *http.ServeMux, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	_, pattern := mux.Handler(get)
	return pattern != "" && pattern != "/"
}

func statusView(st Status, adminAddr string) map[string]any {
	v := map[string]any{
		"version":            st.Version,
		"started":            st.Started,
		"uptime_seconds":     time.Since(st.Started).Seconds(),
		"config":             map[string]any{"version": st.Config.Hash, "file": st.Config.File},
		"generation_created": st.Generation,
		"listeners":          st.Listeners,
		"admin":              map[string]any{"address": st.Config.Admin.Address, "bound": adminAddr},
	}
	if st.Cluster != nil {
		v["cluster"] = st.Cluster
	}
	return v
}

// configView renders cfg with its YAML field names (the names users write) and secrets
// redacted.
func configView(cfg *config.Config) (any, error) {
	v, err := generic(cfg)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok {
		if a, ok := m["admin"].(map[string]any); ok && a["api_key"] != "" && a["api_key"] != nil {
			a["api_key"] = redacted
		}
		redactCredentials(m) // plugins.go
	}
	return v, nil
}

// generic converts a config value to plain maps and slices through its YAML form, so the JSON
// keys and duration strings are exactly what a config file says.
func generic(v any) (any, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return out, nil
}

// upstreamsView is each upstream's config with its targets' live state merged in.
func upstreamsView(src Source, cfg *config.Config) ([]any, error) {
	out := make([]any, 0, len(cfg.Upstreams))
	for _, uc := range cfg.Upstreams {
		v, err := generic(uc)
		if err != nil {
			return nil, err
		}
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{"id": uc.ID}
		}
		ts, _ := src.Targets(uc.ID)
		targets := make([]targetView, len(ts))
		for i, t := range ts {
			targets[i] = newTargetView(&t)
		}
		m["targets"] = targets
		out = append(out, m)
	}
	return out, nil
}

// targetView is a target's summary in /admin/upstreams.
type targetView struct {
	Address       string  `json:"address"`
	Weight        int     `json:"weight"`
	Health        string  `json:"health"`
	HealthReason  string  `json:"health_reason,omitempty"`
	HealthSince   string  `json:"health_since,omitempty"`
	Failures      int64   `json:"consecutive_failures"`
	Ejections     int64   `json:"ejections"`
	EjectedUntil  string  `json:"ejected_until,omitempty"`
	InFlight      int64   `json:"in_flight"`
	Idle          int     `json:"idle_connections"`
	InUse         int     `json:"in_use_connections"`
	LearnedIdle   float64 `json:"learned_idle_timeout_seconds"`
	LearnedSource string  `json:"learned_source"`
	EffectiveIdle float64 `json:"effective_idle_timeout_seconds"`
	ReuseFactor   float64 `json:"reuse_factor"`
	// Protocol is how the gateway speaks to the target: "http1", "h2", "h2c", or for an
	// upstream with protocol auto the target's latest ALPN answer ("h2", "http/1.1"; "auto"
	// before the first).
	Protocol string `json:"protocol"`
}

func newTargetView(t *Target) targetView {
	v := targetView{Address: t.Address, Weight: t.Weight, Health: t.Health, HealthReason: t.HealthReason, InFlight: t.InFlight,
		LearnedIdle: t.Pool.Learned.Seconds(), LearnedSource: t.Pool.LearnedSource,
		EffectiveIdle: t.Pool.EffectiveIdle.Seconds(), ReuseFactor: t.Pool.ReuseFactor, Protocol: "http1"}
	if h := t.H2; h != nil {
		v.Protocol = h.Protocol
		if h.Negotiated != "" {
			v.Protocol = h.Negotiated
		}
	}
	if v.Health == "" {
		v.Health = healthUnknown
	}
	if !t.HealthSince.IsZero() {
		v.HealthSince = t.HealthSince.UTC().Format(time.RFC3339Nano)
	}
	v.Failures, v.Ejections = t.ConsecutiveFailures, t.Ejections
	if !t.EjectedUntil.IsZero() {
		v.EjectedUntil = t.EjectedUntil.UTC().Format(time.RFC3339Nano)
	}
	for _, c := range t.Pool.Conns {
		switch c.State {
		case "idle", "sentinel":
			v.Idle++
		default:
			v.InUse++
		}
	}
	return v
}

// poolView is one target's pool in /admin/upstreams/{id}/pool.
type poolView struct {
	targetView
	Closed bool `json:"closed"`
	// LearnedEvidence says what set the learned value; Provisional is a reset on reuse not
	// yet confirmed (connpool provisional.go), which bounds UnsafeMaxIdle.
	LearnedEvidence string  `json:"learned_evidence,omitempty"`
	Provisional     float64 `json:"provisional_idle_timeout_seconds"`
	ProvRefuted     bool    `json:"provisional_refuted"`
	// ClosesAfterResp: the rule for backends that close conns right after a response holds
	// (connpool afterresponse.go).
	ClosesAfterResp bool              `json:"closes_after_response"`
	UnsafeMaxIdle   float64           `json:"unsafe_max_idle_seconds"`
	Confident       bool              `json:"confident"`
	CloseAge        float64           `json:"close_age_seconds"`
	Margin          float64           `json:"margin_seconds"`
	RaceWindow      float64           `json:"race_window_seconds"`
	BeyondAdv       bool              `json:"beyond_advertised"`
	ReuseRatio      float64           `json:"reuse_ratio"`
	Waiting         int               `json:"waiting"`
	Options         optionsView       `json:"options"`
	Counters        connpool.Counters `json:"counters"`
	Connections     []connView        `json:"connections"`
	RecentClosed    []lifeView        `json:"recent_closed"`
	// H2 is the HTTP/2 pool of an upstream with protocol h2 or h2c: its connections with
	// their stream counts, and the life records of closed ones with the close reason and the
	// backend's GOAWAY (durations in nanoseconds).
	H2 *h2pool.Snapshot `json:"h2,omitempty"`
}

type optionsView struct {
	Enabled        bool    `json:"enabled"`
	IdleTimeout    float64 `json:"idle_timeout_seconds"`
	MaxIdle        int     `json:"max_idle"`
	MaxConns       int     `json:"max_conns"`
	MaxPending     int     `json:"max_pending"`
	QueueTimeout   float64 `json:"queue_timeout_seconds"`
	MaxRequests    int     `json:"max_requests"`
	MaxLifetime    float64 `json:"max_lifetime_seconds"`
	Learn          bool    `json:"learn"`
	SafetyFraction float64 `json:"safety_fraction"`
	UnsafeMaxIdle  float64 `json:"unsafe_max_idle_seconds"`
	Preconnect     bool    `json:"preconnect"`
	TLS            bool    `json:"tls"`
	ServerName     string  `json:"tls_server_name,omitempty"`
}

type connView struct {
	ID       uint64    `json:"id"`
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Age      float64   `json:"age_seconds"`
	IdleAge  float64   `json:"idle_age_seconds"`
	Requests int       `json:"requests_served"`
}

type lifeView struct {
	ID          uint64    `json:"id"`
	Created     time.Time `json:"created"`
	Closed      time.Time `json:"closed"`
	Lifetime    float64   `json:"lifetime_seconds"`
	Requests    int       `json:"requests_served"`
	LastIdleAge float64   `json:"last_idle_age_seconds"`
	Reason      string    `json:"reason"`
}

func newPoolView(t *Target) poolView {
	s := &t.Pool
	o := s.Options
	v := poolView{targetView: newTargetView(t), Closed: s.Closed, UnsafeMaxIdle: s.UnsafeMaxIdle.Seconds(),
		LearnedEvidence: s.LearnedEvidence, Provisional: s.Provisional.Seconds(), ProvRefuted: s.ProvisionalRefuted,
		ClosesAfterResp: s.ClosesAfterResponse,
		Confident:       s.Confident, CloseAge: s.CloseAge.Seconds(), Margin: s.Margin.Seconds(),
		RaceWindow: s.RaceWindow.Seconds(), BeyondAdv: s.BeyondAdvertised, ReuseRatio: s.Counters.ReuseRatio(),
		Waiting: s.Waiting, Counters: s.Counters,
		Options: optionsView{Enabled: o.Enabled, IdleTimeout: o.IdleTimeout.Seconds(), MaxIdle: o.MaxIdle,
			MaxConns: o.MaxConns, MaxPending: o.MaxPending, QueueTimeout: o.QueueTimeout.Seconds(),
			MaxRequests: o.MaxRequests, MaxLifetime: o.MaxLifetime.Seconds(), Learn: o.Learn,
			SafetyFraction: o.SafetyFraction, UnsafeMaxIdle: o.UnsafeMaxIdle.Seconds(),
			Preconnect: o.Preconnect, TLS: o.TLS, ServerName: o.ServerName},
		Connections:  make([]connView, len(s.Conns)),
		RecentClosed: make([]lifeView, len(s.History)),
		H2:           t.H2,
	}
	if v.Counters.ClosedBy == nil {
		v.Counters.ClosedBy = map[connpool.CloseReason]uint64{}
	}
	for i, c := range s.Conns {
		v.Connections[i] = connView{ID: c.ID, State: c.State, Created: c.Created, Age: c.Age.Seconds(),
			IdleAge: c.IdleAge.Seconds(), Requests: c.Served}
	}
	for i, h := range s.History {
		v.RecentClosed[i] = lifeView{ID: h.ID, Created: h.Created, Closed: h.Closed,
			Lifetime: h.Closed.Sub(h.Created).Seconds(), Requests: h.Served,
			LastIdleAge: h.LastIdleAge.Seconds(), Reason: string(h.Reason)}
	}
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "internal_error", "message": err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}
