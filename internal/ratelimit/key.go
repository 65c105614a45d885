package ratelimit

import (
	"fmt"
	"net/netip"
	"strings"
)

// KeyKind is one part of a limit's key.
type KeyKind uint8

// Key parts.
const (
	// KeyConsumer: the consumer an auth plugin identified; requests without one are keyed by
	// their client IP instead (so anonymous clients do not share one allowance).
	KeyConsumer KeyKind = iota + 1
	// KeyClientIP: the real client IP (after trusted proxies).
	KeyClientIP
	// KeyHeader: a request header's value (the first field of that name; absent is empty).
	KeyHeader
	// KeyRoute: the matched route's id, so each route has its own count.
	KeyRoute
)

// KeyPart is one part of a key: a kind, and the header name for KeyHeader.
type KeyPart struct {
	Kind   KeyKind
	Header string
}

// Key is what a limit counts by: the parts' values joined. An empty Key is one global
// count for everything the limit sees.
type Key []KeyPart

// KeyError is a bad item of a key list.
type KeyError struct {
	// Index is the item's index in the list.
	Index int
	Msg   string
}

func (e *KeyError) Error() string { return fmt.Sprintf("[%d]: %s", e.Index, e.Msg) }

// ParseKey parses the config's key list: "consumer", "client_ip", "route",
// "header:<Name>". A problem is a *KeyError naming the item.
func ParseKey(items []string) (Key, error) {
	k := make(Key, 0, len(items))
	for i, it := range items {
		switch {
		case it == "consumer":
			k = append(k, KeyPart{Kind: KeyConsumer})
		case it == "client_ip":
			k = append(k, KeyPart{Kind: KeyClientIP})
		case it == "route":
			k = append(k, KeyPart{Kind: KeyRoute})
		case strings.HasPrefix(it, "header:"):
			name := strings.TrimSpace(it[len("header:"):])
			if name == "" || strings.ContainsAny(name, " :\t\r\n") {
				return nil, &KeyError{i, fmt.Sprintf("%q: want a header name after \"header:\"", it)}
			}
			k = append(k, KeyPart{Kind: KeyHeader, Header: name})
		default:
			return nil, &KeyError{i, fmt.Sprintf("unknown key kind %q (want consumer, client_ip, route or header:<Name>)", it)}
		}
	}
	return k, nil
}

// KeySource gives a request's values for the key parts. Implementations return views
// valid until the request ends; Append copies them.
type KeySource interface {
	// Consumer returns the consumer's name, or "" when no auth plugin identified one.
	Consumer() string
	// ClientIP returns the real client IP.
	ClientIP() netip.Addr
	// Header returns the first value of the named request header, or nil.
	Header(name string) []byte
	// Route returns the matched route's id.
	Route() string
}

// sep separates parts: a byte that header values and ids may not contain.
const sep = 0x1f

// Append appends the key of src's request to dst. It does not allocate when dst has room.
func (k Key) Append(dst []byte, src KeySource) []byte {
	for i, p := range k {
		if i > 0 {
			dst = append(dst, sep)
		}
		switch p.Kind {
		case KeyConsumer:
			if c := src.Consumer(); c != "" {
				dst = append(dst, 'c', ':')
				dst = append(dst, c...)
			} else {
				dst = append(dst, 'i', ':')
				dst = src.ClientIP().AppendTo(dst)
			}
		case KeyClientIP:
			dst = src.ClientIP().AppendTo(dst)
		case KeyHeader:
			dst = append(dst, src.Header(p.Header)...)
		case KeyRoute:
			dst = append(dst, src.Route()...)
		}
	}
	return dst
}
