package admin

import (
	"net/http"
	"strconv"
	"time"

	"sluice/internal/metrics"
)

// Dashboard is an optional capability of a [Source]: the facts the dashboard (/ui/) shows
// beyond the other endpoints. Every method reads state the gateway keeps anyway; none may
// block on a reload.
type Dashboard interface {
	// Totals returns the cumulative request, error and latency counts; the admin side
	// samples them once a second (see traffic.go).
	Totals() metrics.Totals
	// Reloads returns the latest config reloads, oldest first, applied or rejected.
	Reloads() []Reload
	// RouteOrder returns the serving routes best first, as the matcher prefers them.
	RouteOrder() []RouteRank
}

// Reload is one config reload as the dashboard lists it.
type Reload struct {
	Time time.Time `json:"time"`
	// Result is "applied" or "rejected" (the previous config kept serving).
	Result  string `json:"result"`
	Version string `json:"version,omitempty"` // the config version applied
	Error   string `json:"error,omitempty"`   // why it was rejected
}

// RouteRank is a route's place in the precedence order.
type RouteRank struct {
	Index    int    `json:"index"` // position in the config file
	ID       string `json:"id"`
	Upstream string `json:"upstream"`
	Rank     string `json:"rank"` // the precedence key, as text
}

// handleDashboard adds the endpoints the dashboard polls and the page itself. They answer
// 404 when src has no [Dashboard] (tests with a bare Source).
func handleDashboard(mux *http.ServeMux, src Source, tr *traffic, tl *timelines) {
	d, _ := src.(Dashboard)
	mux.HandleFunc("GET /admin/traffic", func(w http.ResponseWriter, r *http.Request) {
		if tr == nil {
			writeError(w, http.StatusNotFound, "not_found", "no traffic samples on this admin listener")
			return
		}
		if q := r.URL.Query().Get("since"); q != "" { // unix milliseconds: only newer points
			ms, err := strconv.ParseInt(q, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_request", "since: want unix milliseconds")
				return
			}
			writeJSON(w, http.StatusOK, tr.view(time.UnixMilli(ms)))
			return
		}
		b, err := tr.encoded()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	})
	mux.HandleFunc("GET /admin/reloads", func(w http.ResponseWriter, _ *http.Request) {
		rs := []Reload{}
		if d != nil {
			rs = append(rs, d.Reloads()...)
		}
		writeJSON(w, http.StatusOK, map[string]any{"reloads": rs})
	})
	mux.HandleFunc("GET /admin/routes/order", func(w http.ResponseWriter, _ *http.Request) {
		rs := []RouteRank{}
		if d != nil {
			rs = append(rs, d.RouteOrder()...)
		}
		writeJSON(w, http.StatusOK, map[string]any{"version": src.Status().Config.Hash, "routes": rs})
	})
	mux.HandleFunc("GET /admin/upstreams/{id}/timeline", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ts, ok := src.Targets(id)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no upstream \""+id+"\" in the serving config")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"upstream": id, "targets": tl.observe(id, ts, time.Now())})
	})
	handleProbe(mux, src) // probe.go
	handleUI(mux)         // ui.go
}
