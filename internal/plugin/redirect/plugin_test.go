package redirect

import "testing"

func TestSplitHostPort(t *testing.T) {
	for _, tc := range []struct{ in, host, port string }{
		{"a.example", "a.example", ""},
		{"a.example:8080", "a.example", "8080"},
		{"[::1]", "[::1]", ""},
		{"[::1]:8443", "[::1]", "8443"},
		{"", "", ""},
	} {
		if h, p := splitHostPort(tc.in); h != tc.host || p != tc.port {
			t.Errorf("splitHostPort(%q) = %q, %q; want %q, %q", tc.in, h, p, tc.host, tc.port)
		}
	}
}
