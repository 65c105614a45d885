// Package discovery resolves upstream targets given as names: host names (A and AAAA
// records) and SRV names (each record's target host resolved to addresses, with the
// record's port and weight). It has its own small DNS client ([Client]: UDP with EDNS0,
// TCP when an answer is truncated) so that it sees the records' TTLs, which the standard
// library's resolver hides, and can ask a configured resolver.
//
// A [Watcher] per name re-resolves when the answer's TTL expires, clamped to
// [min_ttl, max_ttl] (a TTL of 0 would otherwise mean a query per request's worth of time;
// a long one would pin a stale set), and hands each changed address set to the upstream's
// upstream.Membership, which swaps in a new target set and drains removed targets.
// Failures never empty an upstream: the previous addresses stay and the name is asked again
// after min_ttl. Watchers run on the context of the generation that started them.
package discovery
