package admin

import (
	"fmt"
	"net/http"
)

// Cluster is cluster mode as the admin API sees it (internal/cluster implements it): its
// state for /admin/status, and the write API, which it serves itself.
type Cluster interface {
	http.Handler
	// ClusterStatus returns the node's cluster state, rendered as JSON under "cluster".
	ClusterStatus() any
}

// ClusterSource is an optional capability of a [Source]: the cluster of a gateway in
// cluster mode, nil in file mode.
type ClusterSource interface {
	Cluster() Cluster
}

// WriteKinds are the object kinds of the write API: /admin/<kind> and /admin/<kind>/{id}.
var WriteKinds = []string{"routes", "upstreams", "consumers"}

// handleWrites routes the write API (and GET of one object with its ETag) to the cluster;
// in file mode it answers that the API is read-only.
func handleWrites(mux *http.ServeMux, src Source) {
	h := func(w http.ResponseWriter, r *http.Request) {
		var c Cluster
		if cs, ok := src.(ClusterSource); ok {
			c = cs.Cluster()
		}
		if c == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s: single objects are served in cluster mode only (docs/cluster.md); see GET /admin/config", r.URL.Path))
				return
			}
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s %s: the admin API is read-only in file mode; edit the config file, or run in cluster mode (docs/cluster.md)", r.Method, r.URL.Path))
			return
		}
		c.ServeHTTP(w, r)
	}
	for _, k := range WriteKinds {
		mux.HandleFunc("POST /admin/"+k, h)
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			mux.HandleFunc(m+" /admin/"+k+"/{id}", h)
		}
	}
	for _, m := range []string{"GET", "PUT", "PATCH"} {
		mux.HandleFunc(m+" /admin/settings", h)
	}
}
