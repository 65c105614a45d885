// Package bench holds Sluice's comparison suite (run.sh, docs/benchmarks.md) and its helper
// programs. The test here runs the suite's smoke mode, so CI checks that the suite still
// works and that Sluice serves under load, without running the minutes-long comparison.
package bench

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs `bash run.sh -smoke` (1 round of 2 s against direct, sluice and whichever
// peers are installed; no apt) and checks Sluice's row of the raw results.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds the binaries and runs load for several seconds")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "bash", "run.sh", "-smoke", "-out", out)
	cmd.WaitDelay = 10 * time.Second
	if os.Getenv("PORT_LO") == "" {
		// Beside the other packages' tests: clear of etcd's, redis-server's and
		// testutil.FreeAddr's ranges (24000-31999), which run.sh's default would cover.
		cmd.Env = append(os.Environ(), "PORT_LO=20000", "PORT_SPAN=4000")
	}
	start := time.Now()
	b, err := cmd.CombinedOutput()
	t.Logf("run.sh -smoke took %v:\n%s", time.Since(start).Round(time.Second), b)
	if err != nil {
		t.Fatalf("run.sh -smoke: %v", err)
	}
	rows := readTSV(t, filepath.Join(out, "results.tsv"))
	var served, non2xx int
	for _, r := range rows {
		if r["proxy"] != "sluice" {
			continue
		}
		served += atoi(t, r["requests"])
		non2xx += atoi(t, r["non2xx"])
	}
	if served == 0 {
		t.Errorf("sluice served 0 requests")
	}
	if non2xx != 0 {
		t.Errorf("sluice answered %d non-2xx responses", non2xx)
	}
}

// readTSV reads a file with a header line into one map per row.
func readTSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var head []string
	var rows []map[string]string
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if head == nil {
			head = fields
			continue
		}
		r := map[string]string{}
		for i, h := range head {
			if i < len(fields) {
				r[h] = fields[i]
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
