package gateway

import "sluice/internal/config"

// setLogFields sets the access log fields of g as Apply would for a config with l.
func setLogFields(g *Gateway, l config.Log) { g.logFields.Store(uint64(l.AccessFieldSet())) }
