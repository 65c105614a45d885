package balancer

// Consistent hashing on a ring with virtual nodes. Each target owns a number of points on a
// 64-bit ring proportional to its weight (about 160 per target on average); a key goes to the
// owner of the first point at or after the key's hash. Removing one of N targets moves only
// the keys it owned (about 1/N of them) to the next points clockwise; the others stay put.
// An unavailable or already-tried target is passed over the same way, clockwise, so health
// changes also move only that target's keys. A request without the key falls back to smooth
// weighted round robin. Slow start does not apply: ramping would move keys back and forth.

import (
	"fmt"
	"slices"
	"strconv"

	"sluice/internal/upstream"
)

// VirtualNodes is the average number of ring points per target.
const VirtualNodes = 160

// KeyFunc returns the request key extractor for a hash_on/hash_key pair. The bool result is
// false when the request has no key (then the balancer falls back to round robin).
func KeyFunc(on, key string) (func(upstream.Request) (string, bool), error) {
	switch on {
	case "header":
		return func(r upstream.Request) (string, bool) { return r.HeaderValue(key) }, nil
	case "cookie":
		return func(r upstream.Request) (string, bool) { return r.CookieValue(key) }, nil
	case "query":
		return func(r upstream.Request) (string, bool) { return r.QueryValue(key) }, nil
	case "client_ip":
		return func(r upstream.Request) (string, bool) { ip := r.ClientIP(); return ip, ip != "" }, nil
	case "uri":
		return func(r upstream.Request) (string, bool) { return r.URI(), true }, nil
	}
	return nil, fmt.Errorf("unknown hash_on %q", on)
}

// Hash is a consistent-hash balancer.
type Hash struct {
	targets  []*upstream.Target
	key      func(upstream.Request) (string, bool)
	points   []uint64 // sorted
	owners   []int32  // owners[i] owns points[i]
	fallback *WRR
}

// NewHash returns a Hash over targets keyed by key.
func NewHash(targets []*upstream.Target, key func(upstream.Request) (string, bool)) *Hash {
	h := &Hash{targets: targets, key: key, fallback: NewWRR(targets)}
	var sum int64
	for _, t := range targets {
		sum += int64(max(t.Weight, 1))
	}
	type point struct {
		h     uint64
		owner int32
	}
	var pts []point
	for i, t := range targets {
		n := int(int64(VirtualNodes*len(targets)) * int64(max(t.Weight, 1)) / max(sum, 1))
		for v := range max(n, 1) {
			pts = append(pts, point{hashString(t.Addr + "#" + strconv.Itoa(v)), int32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		if a.h != b.h {
			if a.h < b.h {
				return -1
			}
			return 1
		}
		return int(a.owner - b.owner)
	})
	for _, p := range pts {
		h.points = append(h.points, p.h)
		h.owners = append(h.owners, p.owner)
	}
	return h
}

// Pick implements upstream.Balancer.
func (h *Hash) Pick(p *upstream.Pick) *upstream.Target {
	if p.Req == nil || len(h.points) == 0 {
		return h.fallback.Pick(p)
	}
	k, ok := h.key(p.Req)
	if !ok {
		return h.fallback.Pick(p)
	}
	return h.Lookup(p, k)
}

// Lookup returns the target for key k: the first eligible owner clockwise from k's hash.
func (h *Hash) Lookup(p *upstream.Pick, k string) *upstream.Target {
	kh := hashString(k)
	start, _ := slices.BinarySearch(h.points, kh)
	for pass := 0; pass < 2; pass++ {
		seen := 0
		var checked uint64 // bitmap for up to 64 targets; beyond that, re-checks are cheap
		for i := 0; i < len(h.points) && seen < len(h.targets); i++ {
			o := h.owners[(start+i)%len(h.points)]
			if o < 64 {
				if checked&(1<<o) != 0 {
					continue
				}
				checked |= 1 << o
				seen++
			}
			if t := h.targets[o]; p.Eligible(t, pass == 0) {
				return t
			}
		}
	}
	return nil
}

// hashString is 64-bit FNV-1a followed by the splitmix64 finalizer, which spreads the
// similar strings of virtual node names evenly over the ring.
func hashString(s string) uint64 {
	x := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= 1099511628211
	}
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var _ upstream.Balancer = (*Hash)(nil)
