// Package h1 is Sluice's HTTP/1.1 message codec, used on both sides of the proxy: the
// downstream server reads requests with [ReadRequest], the upstream pool reads responses
// with [ReadResponse], and both stream bodies with [BodyReader] and [ChunkedWriter].
//
// Sluice does not use net/http's server and ReverseProxy on the data path: they cost
// allocations per request and hide the byte-level facts a gateway must judge, such as
// whether a head carried two Content-Length fields. This package parses heads into
// reusable [Request] and [Response] values whose slices point into a buffer owned by the
// message, so reading a head allocates nothing once the value is reused.
//
// # Strictness
//
// A gateway sits between parsers that may disagree. Where two HTTP/1.1 implementations
// could read different message boundaries from the same bytes (request smuggling), this
// package refuses the message instead of guessing, even where RFC 9112 allows a recipient
// to be lenient:
//
//   - Every line ends in CRLF; a bare LF or bare CR anywhere in a head is an error
//     (RFC 9112 §2.2 allows accepting bare LF; we do not).
//   - The request-line is exactly method SP request-target SP HTTP-version with single
//     spaces (§3); only HTTP/1.0 and HTTP/1.1 are served, other versions get 505 (§2.3).
//   - obs-fold and whitespace between a field name and its colon are refused (§5.1, §5.2);
//     field values may hold only VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5).
//   - Content-Length is 1*DIGIT within int63; more than one Content-Length field, even with
//     equal values, is refused in requests (§6.3 item 5 allows merging; we do not).
//   - Transfer-Encoding must be exactly "chunked": together with Content-Length, in
//     HTTP/1.0, repeated, or naming chunked twice it is a 400; any other coding is a 501
//     because the gateway decodes none (§6.1, §6.3 items 3 and 4).
//   - HTTP/1.1 requests carry exactly one valid Host (RFC 9110 §7.2, RFC 9112 §3.2); an
//     absolute-form target's authority wins over it (§3.2.2). Userinfo, fragments and
//     bytes outside VCHAR in the target are refused; CONNECT is a 501.
//   - Chunk sizes are 1*HEXDIG of at most 16 digits; extensions are well-formed and
//     without BWS; the CRLF after each chunk is required (§7.1).
//   - Heads are bounded by [Limits]: too many bytes is a 431 (414 for a request-line alone),
//     too many fields a 431. Trailers are bounded separately (§7.1.2).
//
// Responses come from Sluice's own upstreams and are read a little more tolerantly (a
// status-line without reason phrase and its SP; repeated identical Content-Length values),
// but the framing ambiguities above are still refused, with Status 502. Response framing
// follows §6.3: no body for HEAD, 1xx, 204 and 304; then chunked; then Content-Length;
// otherwise the body runs until the connection closes.
//
// Every violation is reported as an [*Error] carrying the status to answer with; parsing
// never panics on any input (see the fuzz tests).
package h1
