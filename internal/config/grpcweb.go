package config

// validateGRPCWeb checks that the upstreams of r, a route with grpc_web, speak HTTP/2: the
// gateway turns grpc-web into gRPC, which runs over HTTP/2 only.
func (c *Config) validateGRPCWeb(p *problems, b string, r *Route) {
	ids := []string{r.Upstream}
	if r.Split != nil {
		ids = ids[:0]
		for _, sh := range r.Split.Upstreams {
			ids = append(ids, sh.Upstream)
		}
	}
	for _, id := range ids {
		if u := c.UpstreamByID(id); u != nil && !u.UsesH2() {
			p.add(b+".grpc_web", "upstream %q has protocol %q, but grpc-web is translated to gRPC, which needs protocol h2, h2c or auto", id, u.Protocol)
		}
	}
}
