package probe

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProgress: while the idle phase waits, Progress hears what it waits for, every
// ProgressEvery, then what it learned; the request-limit phase reports its result.
func TestProgress(t *testing.T) {
	t.Parallel()
	addr := goBackend(t, 600*time.Millisecond, true)
	var mu sync.Mutex
	var msgs []string
	_, err := Probe(context.Background(), addr, Options{MaxWait: 5 * time.Second, MaxRequests: 20,
		ProgressEvery: 100 * time.Millisecond, Progress: func(m string) {
			mu.Lock()
			defer mu.Unlock()
			msgs = append(msgs, m)
		}})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		addr + ": keeps connections alive; measuring its idle timeout (waiting up to 5s",
		addr + ": idle timeout: waiting for the backend to close an idle connection: ",
		addr + ": idle timeout: the backend closed a connection idle ",
		addr + ": request limit: none within 20 requests",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("progress lacks %q:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "waiting for the backend to close"); n < 3 {
		t.Errorf("%d waiting lines in ~600ms at 100ms intervals, want several:\n%s", n, all)
	}
}
