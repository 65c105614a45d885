// Package forwardauth is the forward-auth plugin: every request is first put to an HTTP auth
// service (the model of Traefik's ForwardAuth and nginx's auth_request), whose answer lets it
// through (with headers for the upstream), denies it (the service's status, body and chosen
// headers go to the client), or fails (503 auth_unavailable, 504 auth_timeout). client.go
// is the check itself, usable without the plugin model; plugin.go wires it into a chain.
// docs/plugins.md#forward-auth is the user's side.
package forwardauth
