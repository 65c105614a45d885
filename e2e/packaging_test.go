package e2e

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// The packaging tests check what can be checked without a container runtime or a systemd
// that runs services: the Dockerfile's build command, run here as it is written; the image's
// default config and its HEALTHCHECK command against the binary that command built; the
// systemd unit with systemd-analyze; scripts/release.sh for this platform.

const repoRoot = ".."

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerInstruction returns the instructions of the Dockerfile named op (RUN, COPY, ...),
// continuation lines joined.
func dockerInstruction(t *testing.T, dockerfile, op string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(dockerfile) {
		line = strings.TrimRight(line, "\n")
		if cur.Len() == 0 && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "") {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
		if cont {
			continue
		}
		ins := strings.TrimSpace(cur.String())
		cur.Reset()
		if rest, ok := strings.CutPrefix(ins, op+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// isStatic reports whether the ELF binary at path has no program interpreter (no dynamic
// loader: it runs on distroless/static and scratch).
func isStatic(t *testing.T, path string) bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// TestDockerfile runs the build stage's go build command as written (with /src the
// repository and /out a temporary directory), checks that it makes a static binary that
// validates the image's config, that every file the final stage copies exists, that the
// image runs as non-root, and that its HEALTHCHECK command reports a running gateway live.
func TestDockerfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux")
	}
	df := readRepoFile(t, "Dockerfile")
	var build string
	for _, r := range dockerInstruction(t, df, "RUN") {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	if build == "" {
		t.Fatal("no RUN with go build in the Dockerfile")
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.NewReplacer("/out/", out+"/", "/src/", root+"/").Replace(build))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-dockerfile", "REVISION=0123abcd")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build command: %v\n%s\n%s", err, build, b)
	} else if !strings.Contains(string(b), "sluice v0.0.0-dockerfile") {
		t.Errorf("the build command's version check printed:\n%s", b)
	}
	bin := filepath.Join(out, "sluice")
	if !isStatic(t, bin) {
		t.Error("the image's binary is dynamically linked: it would not run on distroless/static")
	}

	for _, c := range dockerInstruction(t, df, "COPY") {
		f := strings.Fields(c)
		if len(f) == 3 && f[0] == "--from=build" && strings.HasPrefix(f[1], "/src/") {
			if _, err := os.Stat(filepath.Join(root, strings.TrimPrefix(f[1], "/src/"))); err != nil {
				t.Errorf("COPY %s: %v", c, err)
			}
		}
	}
	if !regexp.MustCompile(`(?m)^USER nonroot`).MatchString(df) || !regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static`).MatchString(df) {
		t.Error("the final stage must be distroless/static and run as nonroot")
	}

	// The image's config, with its ports moved to free ones, served by the built binary;
	// then the HEALTHCHECK command, as written, with the config path moved the same way.
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	conf := strings.NewReplacer(`":8080"`, `"`+listen+`"`, `"127.0.0.1:9180"`, `"`+admin+`"`).Replace(readRepoFile(t, "packaging/sluice.yaml"))
	confPath := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	upstream := okBackend(t)
	gw := exec.Command(bin, "run", confPath)
	gw.Env = append(os.Environ(), "SLUICE_UPSTREAM="+upstream)
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Process.Kill(); gw.Wait() })
	hc := regexp.MustCompile(`HEALTHCHECK .*CMD \[(.*)\]`).FindStringSubmatch(strings.Join(dockerInstruction(t, df, "HEALTHCHECK"), "\n"))
	if hc == nil {
		hc = regexp.MustCompile(`(?s)HEALTHCHECK[^\n]*\n\s*CMD \[(.*?)\]`).FindStringSubmatch(df)
	}
	if hc == nil {
		t.Fatal("no HEALTHCHECK CMD [...] in the Dockerfile")
	}
	var args []string
	for _, a := range strings.Split(hc[1], ",") {
		a = strings.Trim(strings.TrimSpace(a), `"`)
		args = append(args, strings.NewReplacer("/usr/local/bin/sluice", bin, "/etc/sluice/sluice.yaml", confPath).Replace(a))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		check := exec.Command(args[0], args[1:]...)
		check.Env = append(os.Environ(), "SLUICE_UPSTREAM="+upstream)
		b, err := check.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEALTHCHECK %q: %v\n%s", args, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := status(t, "http://"+listen+"/"); code != 200 {
		t.Errorf("the image's config proxied with status %d", code)
	}
}

// TestSystemdUnit checks packaging/sluice.service with systemd-analyze verify (the binary
// path pointed at a built binary, since verify checks that it exists) and wants no
// complaint at all: verify exits 0 on an unknown key and only prints it.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); the unit is not checked")
	}
	unit := readRepoFile(t, "packaging/sluice.service")
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "ExecStart=/usr/local/bin/sluice run /etc/sluice/sluice.yaml"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	bin := binary
	path := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/sluice", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, b)
	}
	b, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=25", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.5: %v\n%s", err, b)
	}
}

// TestReleaseScript runs scripts/release.sh for this platform only and checks the archive,
// its checksum line and the version the binary reports.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "release.sh"), "v0.0.0-releasetest")
	cmd.Env = append(os.Environ(), "OUT="+out, "PLATFORMS="+platform)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "sluice v0.0.0-releasetest") {
		t.Errorf("release.sh did not run the binary's version -v:\n%s", b)
	}
	name := fmt.Sprintf("sluice-v0.0.0-releasetest-%s-%s.tar.gz", runtime.GOOS, runtime.GOARCH)
	archive, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(archive)
	sums, _ := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if want := hex.EncodeToString(sum[:]) + "  " + name + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}
	list, err := exec.Command("tar", "-tzf", filepath.Join(out, name)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sluice", "LICENSE", "README.md", "sluice.yaml", "sluice.service"} {
		if !strings.Contains(string(list), "/"+f+"\n") {
			t.Errorf("the archive lacks %s:\n%s", f, list)
		}
	}
}
