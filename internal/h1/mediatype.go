package h1

// HasMediaType reports whether the content-type value ct is the media type p, alone or
// followed by a "+suffix" or parameters (";..."), under ASCII case folding: with p
// "application/grpc", "application/grpc+proto" and "application/grpc; x=y" are, and
// "application/grpc-web" is not.
func HasMediaType(ct []byte, p string) bool {
	if len(ct) < len(p) || !EqualFold(ct[:len(p)], p) {
		return false
	}
	return len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';'
}
