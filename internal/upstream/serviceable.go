package upstream

import "time"

// HasAvailable reports whether some target of u is available at now (not marked down by
// active checks, not ejected), whatever panic mode would do. It has no side effects (an
// ejection that has expired counts as ended without being logged), so a caller choosing
// between upstreams (a traffic split's fallover) can ask before it commits to one.
func (u *Upstream) HasAvailable(now time.Time) bool {
	for _, t := range u.Current().Targets {
		if t.available(now) {
			return true
		}
	}
	return false
}
