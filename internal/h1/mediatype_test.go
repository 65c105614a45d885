package h1

import "testing"

func TestHasMediaType(t *testing.T) {
	for _, tc := range []struct {
		ct, p string
		want  bool
	}{
		{"application/grpc", "application/grpc", true},
		{"application/grpc+proto", "application/grpc", true},
		{"Application/GRPC;charset=utf-8", "application/grpc", true},
		{"application/grpc-web", "application/grpc", false},
		{"application/grpcx", "application/grpc", false},
		{"application/grp", "application/grpc", false},
		{"application/grpc-web-text+proto", "application/grpc-web", false},
		{"application/grpc-web-text+proto", "application/grpc-web-text", true},
		{"", "application/grpc", false},
	} {
		if got := HasMediaType([]byte(tc.ct), tc.p); got != tc.want {
			t.Errorf("HasMediaType(%q, %q) = %v; want %v", tc.ct, tc.p, got, tc.want)
		}
	}
}
