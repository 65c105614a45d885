// Package router compiles the routes of one config version into a [Table] and matches
// requests against it. A Table is built once per config version by the gateway and then
// shared, read-only, by every request of that generation. A change of a few routes (cluster
// mode) builds the next Table with [Table.Update], which shares with the one before
// everything the change does not touch and never modifies it (update.go).
//
// # Semantics
//
// A route matches when every condition it gives holds:
//
//   - hosts: an exact name ("api.example.com") or a wildcard ("*.example.com": one or more
//     labels before ".example.com", not "example.com" itself). Compared case-insensitively
//     after stripping the port from the request's Host ("[::1]:8080" is "::1"). No hosts: any.
//   - path: an exact path, or a template where "{name}" matches one non-empty segment and a
//     final "{name...}" matches the rest of the path, possibly empty ("/f/{p...}" matches
//     "/f/" and "/f/a/b" but not "/f"). Paths are compared as received: "%2F" is not a
//     separator and parameter values are not decoded. A trailing slash is significant.
//   - path_prefix: a literal prefix. One ending in "/" matches any path starting with it;
//     any other matches only at a segment boundary ("/api" matches "/api" and "/api/x",
//     not "/apix").
//   - path_regex: an RE2 expression, unanchored unless it anchors itself.
//   - methods (any of; upper-cased at Compile, the request's compared as is), headers and
//     query (exact, regex, present or absent; a header func of nil means no headers).
//     Query arguments use [net/url.ParseQuery] semantics and their first value; the query
//     is parsed only when a route with query conditions could win.
//
// Among the matching routes the winner is the one with, in order: the higher priority; the
// more specific host (exact, then wildcard with a longer suffix, then none); the more
// specific path (exact, then template with fewer parameters and then a longer literal part
// before the first parameter, then prefix (longer first), then regex, then none); more
// condition kinds given among methods, headers and query; the lower index.
// This order is precomputed per route and host as a comparable rank.
//
// # Algorithm
//
// Routes are first split by host into buckets: a map from exact host, a map from wildcard
// suffix ("example.com" for "*.example.com"), and one bucket for routes without hosts. A
// route with several hosts is placed in several buckets, ranked by the host of each. A
// request visits the exact bucket of its host, the wildcard bucket of each proper suffix
// ("a.b.example.com" looks up "b.example.com", "example.com", "com"), and the any-host
// bucket: a number of map lookups bounded by the labels of the host, not by the routes.
//
// Each bucket holds a segment tree. A node stands for the path segments consumed on the
// way to it; it has a map of static children keyed by the next segment, one parameter
// child for "{name}", and lists of routes:
//
//	exact      exact paths and templates ending at the node (the path must end there)
//	rest       templates whose final "{name...}" captures from the next segment on
//	prefixEnd  prefixes not ending in "/", attached to the node of their last segment:
//	           they match whether the path ends at the node or goes on with "/", which
//	           is the segment-boundary rule
//	prefixDir  prefixes ending in "/", attached to the node of the segments before that
//	           slash: they match only if the path goes on
//
// Matching walks the request path segment by segment, descending into both the static
// child and (for a non-empty segment) the parameter child, since a less specific branch
// may hold a route of higher priority or the only one whose methods fit. Each node is
// reached by a single sequence of steps, so a walk visits each node at most once; in
// practice it costs one or two map lookups per path segment, independent of the number of
// routes.
//
// Routes with a path_regex are kept in a plain list per bucket and are inherently linear;
// so are routes without a path condition. Every list is sorted best rank first, and a
// candidate is tested only if its rank beats the best match found so far, so scanning a
// list stops at the first route that cannot win or is accepted, and regexes run only for
// routes that could still win. Buckets are visited from the most to the least specific
// host so that this pruning is effective.
//
// Method, header and query conditions are checked only on candidates that pass the rank
// test. Path parameters are not recorded during the walk: once the winner is known, its
// parameters are cut out of the path by their segment positions. So Match allocates
// nothing except the Params of a template winner (and the parsed query, when needed).
package router
