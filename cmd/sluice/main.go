// Command sluice is the Sluice API gateway.
//
//	sluice run [FILE]         serve FILE (also -c FILE); with no file at all, the demo
//	sluice validate FILE      check a config; exit 1 listing every problem
//	sluice probe URL|-c FILE  measure backends' keep-alive behaviour (see docs/probe.md)
//	sluice health [-ready]    ask a running gateway's admin API (for container health checks)
//	sluice version [-v]       print the version (and build facts)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"sluice/internal/config"
	"sluice/internal/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "probe":
		return cmdProbe(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  sluice run [FILE] [-demo-backend]
                             serve the config FILE (or -c FILE); with no file at all, the
                             embedded demo config and a demo echo backend
  sluice validate FILE       check a config file (or -c FILE) and list every problem
  sluice probe URL           measure a backend's keep-alive behaviour (idle timeout, request limit)
  sluice probe -c FILE       probe every upstream target of a config; exit 1 on risky keepalive settings
  sluice health [-ready]     exit 0 when a running gateway's admin API says it is live (ready)
  sluice version [-v]        print the version; -v adds revision, Go version and platform

Run "sluice COMMAND -h" for a command's flags.
`)
}

// parseFlags parses args into fs, allowing flags after positional arguments too
// ("run sluice.yaml -demo-backend"), and returns the positional ones. -h prints the flags to
// stdout and returns code 0; a bad flag prints the error and the flags to stderr, code 2.
// ok is false when the caller should return code.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	fs.SetOutput(io.Discard)
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s\n", synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return nil, 0, false
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice %s: %v\n", fs.Name(), err)
			printUsage(stderr)
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// configFile resolves the config file of run and validate from -c and the positional
// arguments: at most one file, named once.
func configFile(cmd, flagged string, pos []string) (string, error) {
	switch {
	case len(pos) > 1:
		return "", fmt.Errorf("sluice %s: one config file, got %d arguments: %q", cmd, len(pos), pos)
	case len(pos) == 1 && flagged != "" && pos[0] != flagged:
		return "", fmt.Errorf("sluice %s: two config files: -c %s and %s; give one", cmd, flagged, pos[0])
	case len(pos) == 1:
		return pos[0], nil
	}
	return flagged, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	file := fs.String("c", "", "config file to check (or give it as the argument)")
	pos, code, ok := parseFlags(fs, args, "sluice validate FILE", stdout, stderr)
	if !ok {
		return code
	}
	path, err := configFile("validate", *file, pos)
	if err == nil && path == "" {
		err = errors.New("sluice validate: a config file is required: sluice validate FILE")
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg, err := config.Load(path)
	if err == nil {
		err = gateway.CheckPlugins(cfg) // the plugins check their own settings
	}
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d upstreams, %d routes)\n", path,
		len(cfg.Listeners), len(cfg.Upstreams), len(cfg.Routes))
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, w := range config.HostWarnings(cfg) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return 0
}

func printConfigErr(w io.Writer, err error) {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		errs := multi.Unwrap()
		fmt.Fprintf(w, "invalid config: %d problem(s):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "invalid config: %s\n", err)
}
