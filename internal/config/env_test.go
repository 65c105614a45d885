package config

import (
	"strings"
	"testing"
)

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("SLUICE_T_ADDR", "127.0.0.1:9001")
	t.Setenv("SLUICE_T_EMPTY", "")
	t.Setenv("SLUICE_T_NEWLINE", "a\nb")
	const base = `listeners:
  - address: "%LISTEN%"
upstreams:
  - id: app
    targets: [{address: "%TARGET%"}]
routes:
  - id: all
    upstream: app
    rewrite: {path_regex: "^/u/(?P<id>[0-9]+)$", path_replacement: "%REPL%"}   # ${NOT_IN_COMMENTS}
`
	tests := []struct {
		name                   string
		listen, target, repl   string
		wantListen, wantTarget string
		wantRepl               string
		err                    []string
	}{
		{name: "set", listen: "127.0.0.1:8080", target: "${SLUICE_T_ADDR}", wantListen: "127.0.0.1:8080", wantTarget: "127.0.0.1:9001",
			repl: "/users/${id}", wantRepl: "/users/${id}"},
		{name: "default used when unset", listen: "${SLUICE_T_UNSET:-127.0.0.1:8081}", target: "${SLUICE_T_ADDR}",
			wantListen: "127.0.0.1:8081", wantTarget: "127.0.0.1:9001", repl: "/x", wantRepl: "/x"},
		{name: "default used when empty", listen: "127.0.0.1:${SLUICE_T_EMPTY:-8082}", target: "${SLUICE_T_ADDR}",
			wantListen: "127.0.0.1:8082", wantTarget: "127.0.0.1:9001", repl: "/x", wantRepl: "/x"},
		{name: "escaped", listen: "127.0.0.1:8080", target: "${SLUICE_T_ADDR}", repl: "/$${ID}",
			wantListen: "127.0.0.1:8080", wantTarget: "127.0.0.1:9001", wantRepl: "/${ID}"},
		{name: "unset is an error on its line, with no follow-up", listen: "127.0.0.1:8080", target: "${SLUICE_T_UNSET}", repl: "/x",
			err: []string{"e.yaml:5: environment variable SLUICE_T_UNSET is not set: set it, or give a default as in ${SLUICE_T_UNSET:-value}"}},
		{name: "every unset one is reported", listen: "${SLUICE_T_UNSET_A}", target: "${SLUICE_T_UNSET_B}", repl: "/x",
			err: []string{"e.yaml:2: environment variable SLUICE_T_UNSET_A is not set", "e.yaml:5: environment variable SLUICE_T_UNSET_B is not set"}},
		{name: "line break", listen: "127.0.0.1:8080", target: "${SLUICE_T_NEWLINE}", repl: "/x",
			err: []string{"e.yaml:5: environment variable SLUICE_T_NEWLINE holds a line break"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.NewReplacer("%LISTEN%", tc.listen, "%TARGET%", tc.target, "%REPL%", tc.repl).Replace(base)
			c, err := Parse("e.yaml", []byte(yaml))
			if tc.err != nil {
				got := splitErrors(err)
				if len(got) != len(tc.err) {
					t.Fatalf("errors %v, want %d: %q", err, len(tc.err), tc.err)
				}
				for i, w := range tc.err {
					if !strings.Contains(got[i].Error(), w) {
						t.Errorf("error %q, want %q", got[i], w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Listeners[0].Address != tc.wantListen || c.Upstreams[0].Targets[0].Address != tc.wantTarget ||
				c.Routes[0].Rewrite.PathReplacement != tc.wantRepl {
				t.Errorf("got %q %q %q, want %q %q %q", c.Listeners[0].Address, c.Upstreams[0].Targets[0].Address,
					c.Routes[0].Rewrite.PathReplacement, tc.wantListen, tc.wantTarget, tc.wantRepl)
			}
		})
	}
}
