package reason

// Reason codes of the traffic policy plugins (redirect, static-response, fault-injection;
// docs/errors.md, "Traffic policy"). None of them is an error of the gateway: they are
// counted in sluice_plugin_answers_total, never in sluice_gateway_errors_total.
const (
	// Redirect: the redirect plugin answered with a 3xx and a Location (not an error).
	Redirect Code = "redirect"
	// StaticResponse: the static-response plugin answered with its configured response,
	// whatever its status (a maintenance page's 503 included): not an error of the gateway.
	StaticResponse Code = "static_response"
	// FaultAbort: the fault-injection plugin aborted the request on purpose with its
	// configured status, for a chaos test. Not a real failure: the upstream was not asked.
	FaultAbort Code = "fault_injected_abort"
)

func init() {
	for c, d := range map[Code]string{
		Redirect:       "the gateway redirected the request",
		StaticResponse: "the gateway answered with the route's configured response",
		FaultAbort:     "the gateway aborted the request on purpose (fault injection, a chaos test)",
	} {
		descriptions[c] = d
	}
}
