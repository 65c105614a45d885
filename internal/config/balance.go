package config

// Balancer, health check and limits defaults and validation. Filled in by the load-balancing
// and health work.

func defaultBalancer(b *Balancer) {
	setIfZero(&b.Policy, "round_robin")
}

func defaultHealthCheck(h *HealthCheck) {
	setIfNil(&h.PanicThreshold, 0.5)
}

func validateBalancer(p *problems, base string, b Balancer) {}

func validateHealthCheck(p *problems, base string, h HealthCheck) {}

func validateLimits(p *problems, base string, l Limits) {}
