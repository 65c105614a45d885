package router

import (
	"fmt"

	"sluice/internal/config"
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

// Hold reports whether every condition holds for the headers of in. It does not allocate.
func (cs Conds) Hold(in *Input) bool {
	for i := range cs {
		c := &cs[i]
		v, ok := "", false
		if in.Header != nil {
			v, ok = in.Header(c.name)
		}
		if !c.holds(v, ok) {
			return false
		}
	}
	return true
}
