package router

import (
	"fmt"
	"unsafe"

	"sluice/internal/config"
	"sluice/internal/h1"
)

// Conds are compiled request header conditions (config.ValueMatch) for deciders other than
// the route table, such as a traffic split's rules. They hold as a route's match.headers do.
type Conds []cond

// CompileHeaders compiles header conditions; an error names the condition's index.
func CompileHeaders(vms []config.ValueMatch) (Conds, error) {
	cs, field, err := compileConds("headers", vms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return cs, nil
}

// Hold reports whether every condition holds for the request header h. It does not
// allocate: values are compared in place, never kept.
func (cs Conds) Hold(h *h1.Header) bool {
	for i := range cs {
		c := &cs[i]
		v, ok := h.Get(c.name)
		if !c.holds(unsafe.String(unsafe.SliceData(v), len(v)), ok) {
			return false
		}
	}
	return true
}
