package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
)

// Thresholds of [Warnings].
const (
	// WarnIdleTimeoutAbove is the keepalive.idle_timeout above which, with learning off, a
	// config is warned about: Node.js closes idle connections after 5s by default (gunicorn
	// 2s, Apache 5s), so a longer pool timeout races such backends (docs/probe.md).
	WarnIdleTimeoutAbove = Duration(5 * time.Second)
	// WarnSafetyFractionAbove is the safety_fraction above which too little margin is left
	// for network delay and timer jitter.
	WarnSafetyFractionAbove = 0.95
)

// Warnings returns the risky but legal settings of c, a config as returned by [Parse] or
// [Load], each formatted like a validation error: "file:line: path: message". Lines are
// found by re-reading c.File when it still holds the bytes c was parsed from; otherwise
// they are left out. Warnings never stop a config from loading: `sluice validate` prints
// them after "ok" and `sluice run` logs them.
func Warnings(c *Config) []string {
	var p problems
	for i, u := range c.Upstreams {
		warnKeepalive(&p, fmt.Sprintf("upstreams[%d]", i), u.Keepalive)
		warnRetry(&p, fmt.Sprintf("upstreams[%d].retry", i), u.Retry)
		warnUpstreamTLS(&p, fmt.Sprintf("upstreams[%d]", i), u)
	}
	for i, r := range c.Routes {
		warnRetry(&p, fmt.Sprintf("routes[%d].retry", i), r.Retry)
	}
	warnAdmin(&p, c.Admin)
	for i, l := range c.Listeners {
		if l.TLS != nil {
			warnTLS(&p, fmt.Sprintf("listeners[%d]", i), l.TLS)
		}
	}
	return p.lines(c)
}

// lines formats warnings about c, each as "file:line: path: message", sorted by line.
func (p problems) lines(c *Config) []string {
	if len(p) == 0 {
		return nil
	}
	err := p.join(c.File, sourceIndex(c))
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

func warnKeepalive(p *problems, b string, k Keepalive) {
	b += ".keepalive"
	if k.Enabled != nil && !*k.Enabled {
		p.add(b+".enabled", "keep-alive is off: every request opens a new connection to the backend (a TCP handshake per request); fine if deliberate")
		return
	}
	learn := k.Learn == nil || *k.Learn
	if idle := k.IdleTimeout; !learn && idle != nil && *idle > WarnIdleTimeoutAbove {
		p.add(b+".idle_timeout", "%s with learn: false is above the idle timeout of common backends (Node.js 5s, gunicorn 2s): "+
			"a backend that closes sooner makes pooled requests fail; measure it with `sluice probe` and set idle_timeout below it, or turn learning on", *idle)
	}
	if f := k.SafetyFraction; f != nil && *f > WarnSafetyFractionAbove {
		p.add(b+".safety_fraction", "%g leaves less than %g%% margin below learned backend timeouts: network delay and timer jitter can exceed it (default %g)",
			*f, roundPct(1-WarnSafetyFractionAbove), DefaultSafetyFraction)
	}
}

func roundPct(f float64) float64 { return float64(int(f*100 + 0.5)) }

func warnRetry(p *problems, b string, r Retry) {
	if r.NonIdempotent != nil && *r.NonIdempotent {
		p.add(b+".non_idempotent", "POST, PATCH and other non-idempotent requests are retried after failures where the backend may have processed them: they can run twice; prefer an idempotency key header")
	}
}

func warnAdmin(p *problems, a Admin) {
	if !a.IsEnabled() || a.Address == "" || isLoopback(a.Address) {
		return
	}
	p.add("admin.address", "the admin listener %q is reachable from the network: metrics and pool state are exposed; bind it to 127.0.0.1 unless that is intended", a.Address)
}

// sourceIndex re-reads and indexes the file c was parsed from, for line numbers. It
// returns nil when the file is gone, changed since, or was never a file.
func sourceIndex(c *Config) *nodeIndex {
	if c.File == "" || c.Hash == "" || strings.HasPrefix(c.File, "embedded:") {
		return nil
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return nil
	}
	data, _ = expandEnv(data) // as Parse hashed it
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.Hash {
		return nil
	}
	root, err := parseDocument(c.File, data)
	if err != nil {
		return nil
	}
	return buildIndex(root)
}
