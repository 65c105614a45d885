package server

import "testing"

func TestGRPCWebType(t *testing.T) {
	for ct, want := range map[string]string{
		"application/grpc-web":                  "application/grpc-web",
		"application/grpc-web+proto":            "application/grpc-web+proto",
		"application/grpc-web-text":             "application/grpc-web-text",
		"Application/GRPC-Web-Text+proto ; a=b": "application/grpc-web-text+proto",
		"application/grpc":                      "",
		"application/grpc+proto":                "",
		"application/grpc-webx":                 "",
		"application/json":                      "",
		"":                                      "",
	} {
		if got := grpcWebType([]byte(ct)); got != want {
			t.Errorf("grpcWebType(%q) = %q; want %q", ct, got, want)
		}
	}
}
