package cors

import "sluice/internal/config"

// Config is the cors plugin's config.
type Config struct {
	// AllowOrigins are the origins allowed: exact ("https://app.example.com"), a wildcard
	// subdomain ("https://*.example.com": any subdomain, not the bare domain), or "*" (any
	// origin; not with allow_credentials). Required.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods are the methods a preflight may ask for. Default GET, HEAD, POST, PUT,
	// PATCH, DELETE.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request headers a preflight may ask for (case-insensitive);
	// ["*"] allows any (the requested ones are echoed). Default: none beyond the
	// CORS-safelisted ones, which need no preflight.
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders are response headers scripts may read beyond the safelisted ones.
	// Default none.
	ExposeHeaders []string `yaml:"expose_headers"`
	// AllowCredentials lets browsers send cookies and HTTP auth cross-origin
	// (Access-Control-Allow-Credentials: true). Default false.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight's answer (Access-Control-Max-Age,
	// whole seconds). Default 0: not sent (browsers use 5s).
	MaxAge config.Duration `yaml:"max_age"`
}
