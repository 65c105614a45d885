// Package split chooses, per request, which upstream of a split route serves it
// (config.Split, docs/traffic.md). Each share is a whole proxy.Route built for its own
// upstream, so the upstream's targets, balancer, health checks, pools, learned idle timeouts,
// timeouts and retry policy all apply unchanged: the split only decides between them, once,
// before the proxy runs. A retry stays on the chosen upstream.
//
// # Choosing a share
//
// Every weighted share owns a slice of the 64-bit number line, in config order, sized by
// its weight: with weights 90 and 10 the first owns [0, 0.9·2^64) and the second the rest. A
// weight of 0 owns nothing, so it is never chosen by weight (and never causes a 503: it is
// not there to fail). A request's point on the line is
//
//   - with sticky set and the request carrying the key: a 64-bit hash of the key's value.
//     The same value lands on the same point on every gateway and after every reload; it
//     changes share only when the weights move the slice boundary across it. Raising a
//     canary listed first from 5 to 10 keeps every client that was on it, and adds more.
//   - otherwise: the next element of a Weyl sequence (a counter times 2^64/φ, modulo
//     2^64), which spreads consecutive requests evenly over the line. Over N requests each
//     share's count is within a few requests of its exact part (the sequence's discrepancy
//     falls as log N / N), deterministically: no random numbers, so tests of the shares
//     cannot flake, and no bursts of one share as a plain counter modulo the total gives.
//
// # Fallover
//
// When the chosen upstream has no available target (all marked down or ejected) and
// fallover is on, the next share in config order with a weight above 0 and an available
// target serves instead; when none has one, the chosen upstream serves (its panic mode or
// its 503 no_healthy_target apply). Fallover looks past panic mode on purpose: balancing
// across targets believed dead is the last resort of an upstream alone, and a split has a
// live alternative.
package split

import (
	"bytes"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/router"
)

// Split is the runtime form of one route's config.Split. Pick is safe for concurrent use.
type Split struct {
	shares   []share
	rules    []rule
	sticky   *config.Sticky
	fallover bool
	next     atomic.Uint64
}

type share struct {
	rt *proxy.Route
	// end is the exclusive end of the share's slice of the line (see the package doc);
	// last marks the share whose slice runs to 2^64 (rounding leaves no gap).
	end    uint64
	last   bool
	weight int
}

type rule struct {
	conds router.Conds
	rt    *proxy.Route
}

// weyl is 2^64/φ, odd: successive multiples modulo 2^64 are evenly spread.
const weyl = 0x9E3779B97F4A7C15

// New builds the split of s from the routes of its shares, by upstream id (each built by
// proxy.NewRoute for that upstream).
func New(s *config.Split, routes map[string]*proxy.Route) (*Split, error) {
	sp := &Split{sticky: s.Sticky, fallover: s.FalloverEnabled()}
	total := 0
	for _, sh := range s.Upstreams {
		total += *sh.Weight
	}
	if total <= 0 {
		return nil, fmt.Errorf("split: every weight is 0")
	}
	var acc uint64
	lastWeighted := -1
	for i, sh := range s.Upstreams {
		w := *sh.Weight
		acc += uint64(w)
		end := uint64(math.MaxUint64)
		if acc < uint64(total) {
			end, _ = bits.Div64(acc, 0, uint64(total)) // acc·2^64 / total
		}
		sp.shares = append(sp.shares, share{rt: routes[sh.Upstream], end: end, weight: w})
		if w > 0 {
			lastWeighted = i
		}
	}
	sp.shares[lastWeighted].last = true
	for i, rc := range s.Rules {
		cs, err := router.CompileHeaders(rc.Headers)
		if err != nil {
			return nil, fmt.Errorf("split.rules[%d].%w", i, err)
		}
		sp.rules = append(sp.rules, rule{conds: cs, rt: routes[rc.Upstream]})
	}
	return sp, nil
}

// Pick returns the route (and so the upstream) that serves the request with header h, at
// now. It does not allocate.
func (sp *Split) Pick(h *h1.Header, now time.Time) *proxy.Route {
	for i := range sp.rules {
		r := &sp.rules[i]
		if r.conds.Hold(h) {
			if !sp.fallover || r.rt.Upstream.HasAvailable(now) {
				return r.rt
			}
			break // the rule's upstream is down: fall over to the weighted shares
		}
	}
	i := sp.index(sp.point(h))
	if sp.fallover && !sp.shares[i].rt.Upstream.HasAvailable(now) {
		for k := 1; k < len(sp.shares); k++ {
			j := (i + k) % len(sp.shares)
			if sh := &sp.shares[j]; sh.weight > 0 && sh.rt.Upstream.HasAvailable(now) {
				return sh.rt
			}
		}
	}
	return sp.shares[i].rt
}

// index is the share whose slice holds x: the first with a weight whose end is above x.
func (sp *Split) index(x uint64) int {
	for i := range sp.shares {
		sh := &sp.shares[i]
		if sh.weight > 0 && (x < sh.end || sh.last) {
			return i
		}
	}
	return len(sp.shares) - 1 // not reached: the last weighted share takes the rest
}

// point is the request's point on the line: its sticky key's hash, or the next rotation.
func (sp *Split) point(h *h1.Header) uint64 {
	if sp.sticky != nil {
		if key, ok := stickyKey(sp.sticky, h); ok {
			return Hash(key)
		}
	}
	return sp.next.Add(1) * weyl
}

// Hash is the sticky hash of key: FNV-1a over its bytes, then a 64-bit finalizer (the
// splitmix64 one) so that similar keys ("user-1", "user-2") land far apart on the line.
// It is stable across processes and versions: the canary a client is on must not change
// with a restart.
func Hash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// stickyKey returns the request's value of the sticky header or cookie.
func stickyKey(st *config.Sticky, h *h1.Header) ([]byte, bool) {
	if st.HashOn == config.StickyHeader {
		v, ok := h.Get(st.Key)
		return v, ok && len(v) > 0
	}
	for _, f := range h.Fields { // a request may carry several Cookie fields
		if h1.EqualFold(f.Name, "Cookie") {
			if v, ok := cookieValue(f.Value, st.Key); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// cookieValue finds name's value in a Cookie field ("a=1; b=2"), without allocating.
func cookieValue(field []byte, name string) ([]byte, bool) {
	for len(field) > 0 {
		var pair []byte
		pair, field, _ = bytes.Cut(field, []byte{';'})
		pair = bytes.TrimSpace(pair)
		k, v, ok := bytes.Cut(pair, []byte{'='})
		if ok && string(k) == name {
			v = bytes.Trim(v, `"`)
			if len(v) > 0 {
				return v, true
			}
		}
	}
	return nil, false
}

// Routes are the routes of the split's shares, in config order.
func (sp *Split) Routes() []*proxy.Route {
	out := make([]*proxy.Route, len(sp.shares))
	for i, sh := range sp.shares {
		out[i] = sh.rt
	}
	return out
}
