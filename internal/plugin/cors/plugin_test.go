package cors

import "testing"

func TestOriginAllowed(t *testing.T) {
	p := &CORS{exact: []string{"https://app.example.com"}, wild: [][2]string{{"https://", ".example.org"}}}
	cases := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true}, // scheme and host are case-insensitive
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://app.example.com.evil.test", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false}, // the wildcard is for subdomains
		{"https://.example.org", false},
		{"https://evilexample.org", false},
		{"https://a.example.org.evil.test", false},
		{"null", false},
	}
	for _, tc := range cases {
		if got := p.originAllowed([]byte(tc.origin)); got != tc.want {
			t.Errorf("originAllowed(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}
