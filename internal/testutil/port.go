package testutil

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Free ports for servers in other processes (the sluice binary, pebble) are taken in
// freeLo-freeHi: below the ephemeral range (32768-60999 on Linux), where a port-0 bind
// never lands, and clear of etcd's (24000-24999) and redis-server's (25000-25999). The bench
// scripts' default range (bench/lib.sh free_port, 20000-31999) covers it: a script run beside
// the tests is to be given PORT_LO/PORT_SPAN outside it, as bench's TestSmoke gives run.sh
// (20000-23999).
const freeLo, freeHi = 26000, 31999

var (
	handedMu sync.Mutex
	handed   = map[int]bool{} // ports this process has handed out: never twice
)

// FreeAddr returns a 127.0.0.1 address where nothing listens, for a server the test starts
// later that must be told its port before it binds, or for a target that refuses dials.
// A port from a bind to port 0 could be handed out again at once, to the next httptest
// server, and once was: the sluice binary could not bind and the test's requests reached
// a backend instead. A port below the ephemeral range can only be taken by someone naming
// it. Use RefusingAddr where the address must stay refused for the whole test.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortIn(t, freeLo, freeHi)))
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePortIn(t, freeLo, freeHi)
}

// freePortIn returns a port in lo-hi that this process has not handed out before and where
// a bind on 127.0.0.1 succeeds now.
func freePortIn(t testing.TB, lo, hi int) int {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		handed[p] = true
		return p
	}
	t.Fatalf("testutil: no free port in %d-%d", lo, hi)
	return 0
}
