package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestRunLogsAsOperated runs the binary as an operator would: `sluice run FILE` serves
// FILE; SIGUSR1 after a rotation (mv) reopens the access log; a reload applies the log
// section (level and access destination, "off" included); every process log line is JSON
// with each key once and durations as strings; SIGTERM exits 0.
func TestRunLogsAsOperated(t *testing.T) {
	be := okBackend(t)
	dir := t.TempDir()
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	access := filepath.Join(dir, "access.log")
	cfgText := func(level, accessDest string) string {
		return routeConfig(listen, be, fmt.Sprintf("admin: {address: %q}\nlog: {level: %s, access: %q}\n", admin, level, accessDest))
	}
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText("debug", access)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	if code := status(t, "http://"+admin+"/admin/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	for _, args := range [][]string{{"health", "-admin", admin}, {"health", "-ready", "-c", cfg}} {
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
			t.Errorf("sluice %q: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command(binary, "health", "-admin", testutil.RefusingAddr(t)).CombinedOutput(); err == nil {
		t.Errorf("sluice health against a dead address exited 0: %s", out)
	}
	if ls := p.lines(); strings.Contains(strings.Join(ls, "\n"), "demo") {
		t.Errorf("a config file was given, but the demo is mentioned:\n%s", strings.Join(ls, "\n"))
	}
	status(t, "http://"+listen+"/first")
	waitFile(t, access, `"/first"`)

	// A malformed request makes the server log at debug (its logger came from the gateway's).
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	io.Copy(io.Discard, c)
	c.Close()
	p.waitLog(t, `"rejected malformed request"`, 0)

	// Rotation: move the file away, SIGUSR1, and new lines go to a new file of the same name.
	if err := os.Rename(access, access+".1"); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGUSR1)
	p.waitLog(t, `"access log reopened"`, 0)
	status(t, "http://"+listen+"/after-rotation")
	waitFile(t, access, `"/after-rotation"`)
	if fileContains(access+".1", "/after-rotation") {
		t.Error("a line after SIGUSR1 went to the moved file")
	}

	// Reload to level error and access off: no access lines, no INFO lines any more.
	if err := os.WriteFile(cfg, []byte(cfgText("error", "off")), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	reloaded := p.waitLog(t, `"config reloaded"`, 0)
	status(t, "http://"+listen+"/while-off")
	p.signal(t, syscall.SIGHUP) // a second reload: its INFO lines must not appear
	waitReloads(t, admin, 2)
	time.Sleep(300 * time.Millisecond) // the access log flushes every 100 ms: give a line time to appear
	if fileContains(access, "/while-off") {
		t.Error("an access line was written after a reload to access: off")
	}
	for _, l := range p.lines()[reloaded+1:] {
		if strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, `"level":"DEBUG"`) {
			t.Errorf("after a reload to level error: %s", l)
		}
	}

	// An access log that cannot be opened refuses the reload as a whole, saying why.
	if err := os.WriteFile(cfg, []byte(cfgText("info", filepath.Join(dir, "missing", "a.log"))), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	rej := p.waitLog(t, `"config reload rejected; the previous config keeps serving"`, reloaded+1)
	if l := p.lines()[rej]; !strings.Contains(l, "log.access: open access log") {
		t.Errorf("rejection does not say why: %s", l)
	}

	// Reload to another file at level info: lines go there, and INFO lines come back.
	other := filepath.Join(dir, "other.log")
	if err := os.WriteFile(cfg, []byte(cfgText("info", other)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "access lines in "+other, func() bool {
		status(t, "http://"+listen+"/other") // sent until the reload has switched the access log
		return fileContains(other, `"/other"`)
	})

	p.terminate(t, 10*time.Second) // accesslog_test.go
	checkProcessLog(t, p.lines())
}
