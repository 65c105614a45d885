package gateway

import "crypto/tls"

// cipherSuiteName is tls.CipherSuiteName without its cost: crypto/tls builds its whole list of
// suites (14 heap allocations) on every call, and the access log names the suite of every
// request on a TLS listener (tls_cipher). The names are read from crypto/tls once.
func cipherSuiteName(id uint16) string {
	if n, ok := cipherSuiteNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id) // not a suite crypto/tls knows: its hex form
}

var cipherSuiteNames = func() map[uint16]string {
	m := map[uint16]string{}
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			m[s.ID] = s.Name
		}
	}
	return m
}()
