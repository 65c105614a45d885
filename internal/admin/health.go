package admin

import "net/http"

// Readiness is an optional capability of a [Source]: whether the gateway should be sent
// traffic. NotReady returns the reasons it should not (no config applied yet, a configured
// listener not bound, shutting down); none means ready. It must not block.
type Readiness interface {
	NotReady() []string
}

// Probe endpoints, answered without the API key: load balancers and Kubernetes probes
// cannot always send one, and the answers reveal only whether the process is up and ready.
const (
	pathHealthz = "/admin/healthz"
	pathReadyz  = "/admin/readyz"
)

func isProbe(path string) bool { return path == pathHealthz || path == pathReadyz }

// handleProbes adds /admin/healthz (live: the process answers) and /admin/readyz (ready:
// 200, or 503 with the reasons; a Source without [Readiness] is always ready).
func handleProbes(mux *http.ServeMux, src Source) {
	mux.HandleFunc("GET "+pathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "live"})
	})
	mux.HandleFunc("GET "+pathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		var reasons []string
		if rd, ok := src.(Readiness); ok {
			reasons = rd.NotReady()
		}
		if len(reasons) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "reasons": reasons})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	})
}
