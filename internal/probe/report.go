package probe

import (
	"fmt"
	"io"
	"strings"
	"time"

	"sluice/internal/config"
)

// Recommendation is the keepalive block of a Sluice upstream that fits a probed backend.
type Recommendation struct {
	// Enabled is false when the backend does not keep connections alive.
	Enabled bool `json:"enabled"`
	// IdleTimeout is the recommended keepalive.idle_timeout; 0 with Enabled false.
	IdleTimeout Duration `json:"idle_timeout_ms,omitempty"`
	// MaxRequests is the recommended keepalive.max_requests; 0: unlimited (omit it).
	MaxRequests int `json:"max_requests,omitempty"`
	// Notes explain the choice where it is not a plain measurement.
	Notes []string `json:"notes,omitempty"`
}

// Recommend derives Sluice keepalive settings from r: the idle timeout at fraction (the
// upstream's safety_fraction, 0.85 by default) of the measured one, rounded down, and
// max_requests one below a measured request limit.
func Recommend(r *Result, fraction float64) Recommendation {
	if !r.KeepsAlive {
		return Recommendation{Notes: []string{"the backend does not keep connections alive: " + r.NoKeepAlive}}
	}
	rec := Recommendation{Enabled: true}
	switch idle := r.Idle; {
	case idle == nil:
	case idle.Observed:
		rec.IdleTimeout = Duration(RoundDown(SafeIdleTimeout(idle.Timeout.D(), fraction)))
		if rec.IdleTimeout <= 0 {
			return Recommendation{Notes: []string{fmt.Sprintf("the backend closes idle connections after %s: too soon for reuse", fmtDur(idle.Timeout.D()))}}
		}
		if !idle.CheckOK && idle.CheckAge > 0 {
			rec.Notes = append(rec.Notes, fmt.Sprintf("a request at idle age %s failed: the backend's timeout varies; consider a lower value", fmtDur(idle.CheckAge.D())))
		}
	default:
		def := config.DefaultKeepaliveIdleTimeout.D()
		bound := RoundDown(time.Duration(fraction * float64(idle.MaxWait)))
		rec.IdleTimeout = Duration(min(def, bound))
		if bound < def {
			rec.Notes = append(rec.Notes, fmt.Sprintf("no idle close within %s: this is a safe lower bound; probe with a longer -max-wait to refine it", fmtDur(idle.MaxWait.D())))
		}
	}
	if r.Limit != nil && r.Limit.Limit > 1 {
		rec.MaxRequests = r.Limit.Limit - 1
	}
	if adv := r.AdvertisedTimeout.D(); adv > 0 && r.Idle != nil && r.Idle.Observed && adv > r.Idle.Timeout.D()+time.Second {
		rec.Notes = append(rec.Notes, fmt.Sprintf("the backend advertises Keep-Alive: timeout=%s but closes idle connections after %s: its header cannot be trusted", fmtDur(adv), fmtDur(r.Idle.Timeout.D())))
	}
	return rec
}

// RoundDown rounds a recommended duration down to a readable precision: whole seconds from
// 10s, tenths of a second from 1s, 10ms from 100ms, else milliseconds.
func RoundDown(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Truncate(time.Second)
	case d >= time.Second:
		return d.Truncate(100 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Truncate(10 * time.Millisecond)
	}
	return d.Truncate(time.Millisecond)
}

// roundMeasured rounds a measured timeout to the precision the probe has (doc.go): 10ms
// from 100ms, else 1ms. A backend set to 2s is seen closing at 1.998s or 2.001s; both
// should recommend the same value.
func roundMeasured(d time.Duration) time.Duration {
	if d >= 100*time.Millisecond {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// SafeIdleTimeout is the longest keepalive.idle_timeout that is safely below a backend
// idle timeout measured as measured: fraction of it, after rounding the measurement to
// its precision. [Recommend] rounds it down further for readability.
func SafeIdleTimeout(measured time.Duration, fraction float64) time.Duration {
	return time.Duration(fraction * float64(roundMeasured(measured)))
}

// YAML returns the recommendation as the keepalive block of an upstream.
func (rec Recommendation) YAML() string {
	var b strings.Builder
	b.WriteString("keepalive:\n")
	if !rec.Enabled {
		b.WriteString("  enabled: false\n")
		return b.String()
	}
	if rec.IdleTimeout > 0 {
		fmt.Fprintf(&b, "  idle_timeout: %s\n", config.Duration(rec.IdleTimeout))
	}
	if rec.MaxRequests > 0 {
		fmt.Fprintf(&b, "  max_requests: %d\n", rec.MaxRequests)
	}
	return b.String()
}

// fmtDur formats a measurement to the millisecond.
func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// WriteText writes the human report of r and its recommendation.
func WriteText(w io.Writer, r *Result, rec Recommendation, fraction float64) {
	fmt.Fprintf(w, "target      %s (GET %s, Host %s): status %d\n", r.Target, r.Path, r.Host, r.Status)
	fmt.Fprintf(w, "headers     Connection: %s; Keep-Alive: %s\n", orNone(r.Connection), orNone(r.KeepAlive))
	if r.AdvertisedTimeout > 0 || r.AdvertisedMax >= 0 {
		fmt.Fprintf(w, "advertised  %s\n", advertised(r))
	}
	if !r.KeepsAlive {
		fmt.Fprintf(w, "keep-alive  no: %s\n", r.NoKeepAlive)
	} else {
		fmt.Fprintf(w, "keep-alive  yes: a second request on the same connection was answered\n")
		fmt.Fprintf(w, "idle        %s\n", describeIdle(r.Idle))
		fmt.Fprintf(w, "requests    %s\n", describeLimit(r.Limit))
	}
	fmt.Fprintf(w, "took        %s\n", r.Elapsed.D().Round(10*time.Millisecond))
	fmt.Fprintf(w, "\nrecommended Sluice upstream settings (safety fraction %g):\n", fraction)
	for line := range strings.Lines(rec.YAML()) {
		fmt.Fprintf(w, "  %s", line)
	}
	for _, n := range rec.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func advertised(r *Result) string {
	var parts []string
	if r.AdvertisedTimeout > 0 {
		parts = append(parts, "idle timeout "+fmtDur(r.AdvertisedTimeout.D()))
	}
	if r.AdvertisedMax >= 0 {
		parts = append(parts, fmt.Sprintf("%d more requests", r.AdvertisedMax))
	}
	return strings.Join(parts, ", ")
}

func describeIdle(ir *IdleResult) string {
	if ir == nil {
		return "not measured"
	}
	if !ir.Observed {
		return fmt.Sprintf("no idle timeout observed within %s (keeps connections at least that long)", fmtDur(ir.MaxWait.D()))
	}
	s := "closes idle connections after " + fmtDur(ir.Timeout.D())
	if len(ir.Samples) > 0 {
		s += fmt.Sprintf(" (%d closes seen, from %s to %s)", len(ir.Samples), fmtDur(ir.Samples[0].D()), fmtDur(ir.Longest.D()))
	}
	switch {
	case ir.CheckAge > 0 && ir.CheckOK:
		s += fmt.Sprintf("; a request at idle age %s was answered", fmtDur(ir.CheckAge.D()))
	case ir.CheckAge > 0:
		s += fmt.Sprintf("; a request at idle age %s FAILED", fmtDur(ir.CheckAge.D()))
	}
	if ir.OpenPastSlack > 0 {
		s += fmt.Sprintf("; %d connection(s) stayed open much longer", ir.OpenPastSlack)
	}
	return s
}

func describeLimit(lr *LimitResult) string {
	switch {
	case lr == nil:
		return "not measured"
	case lr.Limit == 0:
		return fmt.Sprintf("no per-connection request limit up to %d", lr.Tried)
	case lr.Signalled:
		return fmt.Sprintf("closes a connection after %d requests (Connection: close on the last)", lr.Limit)
	}
	return fmt.Sprintf("closes a connection after %d requests (silently: the next request failed)", lr.Limit)
}
