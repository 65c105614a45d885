package config

// Retry defaults and validation.

func defaultRetry(r *Retry) {}

func validateRetry(p *problems, base string, r Retry) {}
