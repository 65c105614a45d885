package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"sluice/internal/config"
	"sluice/internal/probe"
)

// POST /admin/probe runs the same measurement as `sluice probe` (internal/probe) against a
// target of the serving config, for the dashboard's Probe page. It is bounded: one probe at
// a time (another gets 429 probe_busy), the idle phase waits at most probeMaxWait, and only
// targets the config names can be probed, so the endpoint cannot be pointed at arbitrary
// hosts. It changes nothing. Like every admin endpoint it needs the API key when one is set;
// it also refuses bodies that are not application/json, which a cross-site form cannot send
// without a CORS preflight, so a page in the operator's browser cannot start probes on a
// loopback admin listener.
const (
	probeMaxWait        = 20 * time.Second
	probeDefaultWait    = 10 * time.Second
	probeMaxRequests    = 200
	probeDefaultRequest = 50
)

type probeRequest struct {
	Upstream    string  `json:"upstream"`
	Target      string  `json:"target"`
	Path        string  `json:"path"`
	MaxWait     float64 `json:"max_wait_seconds"`
	MaxRequests int     `json:"max_requests"`
}

// probeSlot holds one token: a probe holds it while it runs.
var probeSlot = make(chan struct{}, 1)

func handleProbe(mux *http.ServeMux, src Source) {
	mux.HandleFunc("POST /admin/probe", func(w http.ResponseWriter, r *http.Request) {
		pr, err := decodeProbe(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if !hasTarget(src, pr.Upstream, pr.Target) {
			writeError(w, http.StatusNotFound, "not_found",
				fmt.Sprintf("upstream %q has no target %q in the serving config", pr.Upstream, pr.Target))
			return
		}
		select {
		case probeSlot <- struct{}{}:
			defer func() { <-probeSlot }()
		default:
			writeError(w, http.StatusTooManyRequests, "probe_busy", "a probe is running; one runs at a time")
			return
		}
		o := probe.Options{Path: pr.Path, MaxWait: time.Duration(pr.MaxWait * float64(time.Second)), MaxRequests: pr.MaxRequests}
		ctx, cancel := context.WithTimeout(r.Context(), o.MaxWait+5*time.Second)
		defer cancel()
		res, err := probe.Probe(ctx, pr.Target, o)
		if err != nil {
			writeError(w, http.StatusBadGateway, "probe_failed", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"upstream": pr.Upstream, "result": res,
			"recommendation": probe.Recommend(res, safetyFraction(src, pr.Upstream))})
	})
}

func decodeProbe(r *http.Request) (probeRequest, error) {
	var pr probeRequest
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return pr, errors.New("the body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pr); err != nil {
		return pr, fmt.Errorf("decode body: %w", err)
	}
	switch {
	case pr.MaxWait < 0 || pr.MaxWait > probeMaxWait.Seconds():
		return pr, fmt.Errorf("max_wait_seconds: must be between 0 (default %s) and %s", probeDefaultWait, probeMaxWait)
	case pr.MaxRequests < 0 || pr.MaxRequests > probeMaxRequests:
		return pr, fmt.Errorf("max_requests: must be between 0 (default %d) and %d", probeDefaultRequest, probeMaxRequests)
	case pr.Path != "" && pr.Path[0] != '/':
		return pr, errors.New("path: must start with /")
	}
	if pr.MaxWait == 0 {
		pr.MaxWait = probeDefaultWait.Seconds()
	}
	if pr.MaxRequests == 0 {
		pr.MaxRequests = probeDefaultRequest
	}
	return pr, nil
}

func hasTarget(src Source, upstream, addr string) bool {
	ts, ok := src.Targets(upstream)
	for _, t := range ts {
		if ok && t.Address == addr {
			return true
		}
	}
	return false
}

// safetyFraction is the upstream's keepalive.safety_fraction, which the recommendation uses.
func safetyFraction(src Source, upstream string) float64 {
	for _, uc := range src.Status().Config.Upstreams {
		if uc.ID == upstream && uc.Keepalive.SafetyFraction != nil {
			return *uc.Keepalive.SafetyFraction
		}
	}
	return config.DefaultSafetyFraction
}
