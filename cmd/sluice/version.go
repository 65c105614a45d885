package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is stamped by release builds with -ldflags "-X main.version=v0.5.0"; when empty,
// the version comes from the build info the Go toolchain embeds (see [buildInfo]).
var version = ""

// revision is stamped by release builds with -ldflags "-X main.revision=<commit>", for
// builds where the toolchain records no VCS facts (-buildvcs=false, a git worktree, a
// source tarball). The toolchain's vcs.revision wins when it has one.
var revision = ""

// buildFacts is what `sluice version -v` prints: where the binary came from.
type buildFacts struct {
	Version  string // v0.5.0, or a pseudo-version, or "devel+<revision>", or "dev"
	Revision string // VCS commit, "" when unknown
	Time     string // VCS commit time (RFC 3339), "" when unknown
	Modified bool   // built from a work tree with uncommitted changes
	Go       string // toolchain, such as go1.26.0
	Platform string // GOOS/GOARCH
	CGO      string // CGO_ENABLED as built ("0" for the static release binaries)
}

// buildInfo resolves the version: the -ldflags stamp wins; then the module version the
// toolchain recorded (set by `go install sluice/cmd/sluice@v0.5.0`); then the VCS revision
// `go build` recorded from a git checkout ("devel+3f9c2d7a61e0", "-dirty" when modified);
// "dev" when none of these is known (as under `go test`).
func buildInfo(stamped, stampedRev string, bi *debug.BuildInfo) buildFacts {
	f := buildFacts{Version: stamped, Revision: stampedRev, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		f.Go = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				f.Revision = s.Value
			case "vcs.time":
				f.Time = s.Value
			case "vcs.modified":
				f.Modified = s.Value == "true"
			case "CGO_ENABLED":
				f.CGO = s.Value
			}
		}
	}
	switch {
	case f.Version != "":
	case bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		f.Version = bi.Main.Version
	case f.Revision != "":
		f.Version = "devel+" + short(f.Revision)
		if f.Modified {
			f.Version += "-dirty"
		}
	default:
		f.Version = "dev"
	}
	return f
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// currentBuild is the running binary's [buildFacts].
func currentBuild() buildFacts {
	bi, _ := debug.ReadBuildInfo()
	return buildInfo(version, revision, bi)
}

// engineFacts are what this build of the data path does, for bug reports.
var engineFacts = []string{
	"http: HTTP/1.1 both sides (own codec), TLS 1.2+ on listeners, WebSocket tunnels",
	"upstream keep-alive: learned idle timeouts, reuse check, fresh connections for unsafe methods",
	"zero-copy: splice(2) for large bodies on linux (" + spliceState() + ")",
}

func spliceState() string {
	if runtime.GOOS == "linux" {
		return "on"
	}
	return "off on " + runtime.GOOS
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	verbose := false
	for _, a := range args {
		switch a {
		case "-v", "--v", "-verbose", "--verbose":
			verbose = true
		case "-h", "-help", "--help":
			fmt.Fprintln(stdout, "usage: sluice version [-v]\n  -v\tprint the VCS revision, Go version, platform and engine facts too")
			return 0
		default:
			fmt.Fprintf(stderr, "sluice version: unknown argument %q (want -v)\n", a)
			return 2
		}
	}
	f := currentBuild()
	fmt.Fprintf(stdout, "sluice %s\n", f.Version)
	if !verbose {
		return 0
	}
	rev := f.Revision
	if rev == "" {
		rev = "unknown"
	} else if f.Modified {
		rev += " (modified work tree)"
	}
	fmt.Fprintf(stdout, "  revision:  %s\n", rev)
	if f.Time != "" {
		fmt.Fprintf(stdout, "  committed: %s\n", f.Time)
	}
	fmt.Fprintf(stdout, "  go:        %s\n  platform:  %s\n", f.Go, f.Platform)
	if f.CGO != "" {
		fmt.Fprintf(stdout, "  cgo:       %s\n", f.CGO)
	}
	for _, e := range engineFacts {
		fmt.Fprintf(stdout, "  %s\n", e)
	}
	return 0
}
