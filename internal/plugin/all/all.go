// Package all imports every built-in plugin, so that each registers itself (plugin.Register).
// It is the one list of built-ins (like Caddy's modules/standard/imports.go): add a plugin
// by adding its import here, one line per plugin, sorted.
package all

import (
	_ "sluice/internal/plugin/basicauth"           // basic-auth
	_ "sluice/internal/plugin/compress"            // compress
	_ "sluice/internal/plugin/consumerrestriction" // consumer-restriction
	_ "sluice/internal/plugin/cors"                // cors
	_ "sluice/internal/plugin/faultinjection"      // fault-injection
	_ "sluice/internal/plugin/forwardauth"         // forward-auth
	_ "sluice/internal/plugin/iprestriction"       // ip-restriction
	_ "sluice/internal/plugin/jwtauth"             // jwt-auth
	_ "sluice/internal/plugin/keyauth"             // key-auth
	_ "sluice/internal/plugin/limitconn"           // limit-conn
	_ "sluice/internal/plugin/ratelimit"           // rate-limit
	_ "sluice/internal/plugin/redirect"            // redirect
	_ "sluice/internal/plugin/responseheaders"     // response-headers
	_ "sluice/internal/plugin/staticresponse"      // static-response
	_ "sluice/internal/plugin/subfilter"           // sub-filter
)
