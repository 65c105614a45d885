package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/accesslog"
)

// TestAccessLogWriteFailuresCounted: a gateway whose access log goes to a full disk
// (/dev/full) keeps serving; the lost lines and the failed write show in the metrics.
func TestAccessLogWriteFailuresCounted(t *testing.T) {
	full, err := accesslog.OpenOutput("/dev/full", nil, nil)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	access := accesslog.New(io.Discard)
	access.SetOutput(full)
	defer access.Close()
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	gw := New(testLogger(t), access)
	if err := gw.Apply(mustParse(t, yaml, vars)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	}()
	var addr string
	for _, a := range gw.Addrs() {
		addr = a.String()
	}
	c := newClient()
	for range 3 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		resp, _ := getEcho(t, c, req)
		mustStatus(t, resp, 200)
	}
	gw.Shutdown(context.Background()) // every request has logged its line
	access.Flush()
	rec := httptest.NewRecorder()
	gw.Metrics().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`sluice_access_log_lines_total{result="dropped"} 3`,
		`sluice_access_log_lines_total{result="written"} 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// One failed write per batch: the three lines go in one to three batches, depending on
	// how the requests' lines met the writer.
	m := regexp.MustCompile(`(?m)^sluice_access_log_write_errors_total (\d+)$`).FindStringSubmatch(rec.Body.String())
	if n, _ := strconv.Atoi(m[min(len(m)-1, 1)]); m == nil || n < 1 || n > 3 {
		t.Errorf("sluice_access_log_write_errors_total %v, want 1 to 3 (one per failed write)", m)
	}
}
